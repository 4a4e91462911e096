"""A quick local render of the ACR / CatPhan HU maps for unit tests: the analytic map on
a supersampled grid, a Gaussian blur of known σ, point-sampled at the pixel centres, and
optional white noise. (Validation uses the virtual scanner itself.)"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy import ndimage

from scanbench.types import CtFacts, Series, SeriesFacts


def render(hu_at: Callable[..., np.ndarray], w_mm: Sequence[float], *, pixel_mm: float = 0.8,
           fov_mm: float = 240.0, rotation_deg: float = 0.0,
           shift_mm: tuple[float, float] = (0.0, 0.0), sigma_mm: float = 0.5,
           mirror: bool = False, noise_hu: float = 0.0, seed: int = 0, ss: int = 3,
           table_mm: float = 0.0, slice_thickness_mm: float = 5.0) -> Series:
    n = round(fov_mm / pixel_mm)
    fine = (np.arange(n * ss) - (n * ss - 1) / 2) * pixel_mm / ss
    xx, yy = np.meshgrid(fine, fine)
    if mirror:
        xx = -xx
    c, s = math.cos(math.radians(rotation_deg)), math.sin(math.radians(rotation_deg))
    xs, ys = xx - shift_mm[0], yy - shift_mm[1]
    u, v = c * xs + s * ys, -s * xs + c * ys
    rng = np.random.default_rng(seed)
    planes = []
    for w in w_mm:
        img = hu_at(u, v, np.full(u.shape, float(w)))
        img = ndimage.gaussian_filter(img, sigma_mm / (pixel_mm / ss))[ss // 2::ss, ss // 2::ss]
        if noise_hu:
            img = img + rng.normal(0.0, noise_hu, img.shape)
        planes.append(img.astype(np.float32))
    vox = np.stack(planes)
    dz = float(np.diff(w_mm).mean()) if len(w_mm) > 1 else slice_thickness_mm
    aff = np.zeros((4, 4))
    aff[0, 2] = aff[1, 1] = pixel_mm
    aff[2, 0] = dz
    aff[:3, 3] = (-(n - 1) / 2 * pixel_mm, -(n - 1) / 2 * pixel_mm, table_mm + float(w_mm[0]))
    aff[3, 3] = 1.0
    facts = SeriesFacts(modality="CT", series_instance_uid="1.2.3",
                        ct=CtFacts(slice_thickness_mm=slice_thickness_mm))
    return Series(vox, (dz, pixel_mm, pixel_mm), aff, facts)
