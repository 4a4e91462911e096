"""Virtual scans of the ACR 464 and CatPhan phantoms, with the ground truth of every measurement.

Built on the virtual CT scanner (:func:`scanbench.simulate.ct.acquire`) and the
phantoms' geometry (:mod:`scanbench.phantoms.acr_ct`,
:mod:`scanbench.phantoms.catphan`). In ``mode="image"`` everything the
analyses report is known exactly:

- CT numbers: the phantom's nominal value, plus the scanner's ``hu_offset`` for
  materials (the scanner adds it above −500 HU; air stays −1000);
- slice thickness: the FWHM of the scanner's slice sensitivity profile
  (:meth:`CtScannerModel.ssp_fwhm_mm`);
- bar modulation at f: the scanner's MTF(f) (Gaussian PSF, point-sampled
  pixels, so no pixel-aperture term); the highest bar pattern resolved: the
  highest pattern, counting up from the lowest, whose MTF is at least 0.10 and
  whose frequency lies below the pixel grid's Nyquist frequency;
- MTF50 / MTF10 of edges and of the bead: the scanner's;
- noise: the pixel SD the scanner was asked for; low-contrast CNR per slice:
  the rod contrast over that SD; uniformity deviations 0 (no cupping unless
  asked), distance between the ACR BBs 100 mm.

The phantom is placed with its module-1 (ACR) or sensitometry-module (CatPhan)
centre at ``table_z_mm`` + ``shift_mm[2]``; ``modules`` limits the slices to
some modules (a single-module series), ``drop_first`` / ``drop_last`` remove
end slices (an incomplete scan).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from scanbench.analysis.ct.phantom_modules import RESOLVED_MTF
from scanbench.phantoms import acr_ct as acr
from scanbench.phantoms import catphan as cp
from scanbench.simulate.ct import CtScannerModel, CtVolume, acquire, truth_jsonable


def _grid(pixel_mm: float, fov_mm: float) -> tuple[int, float]:
    matrix = round(fov_mm / pixel_mm)
    matrix += matrix % 2
    return matrix, matrix * pixel_mm


def _z_positions(ranges: list[tuple[float, float]], spacing: float, drop_first: int,
                 drop_last: int) -> list[float]:
    """Evenly spaced slices from the lowest to the highest range (a series has no gaps:
    modules asked for apart are scanned with what lies between them)."""
    lo = min(r[0] for r in ranges)
    hi = max(r[1] for r in ranges)
    z = [float(v) for v in np.arange(lo, hi + spacing / 2, spacing)]
    z = z[drop_first: len(z) - drop_last if drop_last else None]
    if not z:
        raise ValueError("no slices left (drop_first/drop_last remove them all)")
    return z


def resolved_truth(model: CtScannerModel, pixel_mm: float,
                   frequencies_lp_cm: Sequence[float]) -> tuple[dict[float, float], float]:
    """(MTF at each bar frequency, highest resolved pattern) for the image mode."""
    mtf = {float(f): float(model.mtf(f / 10.0)) for f in frequencies_lp_cm}
    nyquist = 10.0 / (2.0 * pixel_mm)
    best = 0.0
    for f in sorted(mtf):
        if mtf[f] >= RESOLVED_MTF and f < nyquist:
            best = f
        else:
            break
    return mtf, best


def render_acr464(model: CtScannerModel | None = None, *, pixel_mm: float = 0.49,
                  fov_mm: float | None = None, slice_thickness_mm: float = 5.0,
                  slice_spacing_mm: float | None = None, modules: Sequence[int] = (1, 2, 3, 4),
                  table_z_mm: float = 0.0, shift_mm: tuple[float, float, float] = (0., 0., 0.),
                  rotation_deg: float = 0.0, noise: bool = True, seed: int | None = 0,
                  mode: Literal["image", "fbp"] = "image", supersample: int = 3,
                  reconstruction_diameter_mm: float | None = None, drop_first: int = 0,
                  drop_last: int = 0) -> tuple[CtVolume, dict[str, Any]]:
    """A scan of the ACR CT phantom and its ground truth (module docstring)."""
    model = model or CtScannerModel()
    if not modules or any(m not in (1, 2, 3, 4) for m in modules):
        raise ValueError(f"modules must be among 1, 2, 3, 4, got {list(modules)}")
    spacing = slice_spacing_mm or slice_thickness_mm
    z0 = table_z_mm + shift_mm[2]
    half = acr.MODULE_DEPTH_MM / 2
    ranges = [(z0 + acr.MODULE_CENTRES_MM[m] - half + spacing / 2,
               z0 + acr.MODULE_CENTRES_MM[m] + half - spacing / 2) for m in modules]
    if set(modules) == {1, 2, 3, 4}:
        ranges = [(z0 - half - 10.0, z0 + acr.MODULE_CENTRES_MM[4] + half + 10.0)]
    z = _z_positions(ranges, spacing, drop_first, drop_last)
    matrix, fov = _grid(pixel_mm, fov_mm or 250.0)
    vol = acquire(acr.hu_at, model, fov_mm=fov, matrix=matrix, z_mm=z,
                  slice_thickness_mm=slice_thickness_mm, mode=mode, supersample=supersample,
                  seed=seed, rotation_deg=rotation_deg,
                  shift_mm=(shift_mm[0], shift_mm[1], z0), noise=noise,
                  reconstruction_diameter_mm=reconstruction_diameter_mm,
                  line_sources=acr.line_sources())
    truth: dict[str, Any] = {"kind": "ct-acr464", "phantom": acr.NAME, "modules": list(modules),
                             "scanner": model.to_dict(), **truth_jsonable(vol.truth)}
    if mode == "image":
        truth["expected"] = acr464_truth(model, vol)
    return vol, truth


def acr464_truth(model: CtScannerModel, vol: CtVolume) -> dict[str, Any]:
    off = model.hu_offset
    sd = vol.noise_sd_hu
    mtf, best = resolved_truth(model, vol.pixel_mm, list(acr.BAR_PATTERNS))
    return {
        "ct_number_hu": {i.name: i.hu + (off if i.hu > -500 else 0.0) for i in acr.MATERIALS},
        "slice_thickness_mm": model.ssp_fwhm_mm(vol.slice_thickness_mm),
        "low_contrast_cnr": acr.LOW_CONTRAST_DELTA_HU / sd if sd > 0 else None,
        "ct_number_water_hu": acr.BACKGROUND_HU + off,
        "noise_hu": sd,
        "uniformity_deviation_hu": 0.0,
        "bb_distance_mm": acr.DISTANCE_NOMINAL_MM,
        "distance_accuracy_mm": 0.0,
        "bar_modulation": mtf,
        "high_contrast_resolution_lp_per_cm": best,
        "mtf50_lp_per_cm": model.mtf50_lp_per_cm,
        "mtf10_lp_per_cm": model.mtf10_lp_per_cm,
        "ctdivol_mgy": model.ctdivol_mgy,
    }


def render_catphan(model: CtScannerModel | None = None, *, catphan: str = "504",
                   pixel_mm: float = 0.49, fov_mm: float | None = None,
                   slice_thickness_mm: float = 5.0, slice_spacing_mm: float | None = None,
                   modules: Sequence[str] | None = None, table_z_mm: float = 0.0,
                   shift_mm: tuple[float, float, float] = (0., 0., 0.),
                   rotation_deg: float = 0.0, noise: bool = True, seed: int | None = 0,
                   mode: Literal["image", "fbp"] = "image", supersample: int = 3,
                   reconstruction_diameter_mm: float | None = None, drop_first: int = 0,
                   drop_last: int = 0, cupping_radius_mm: float | None = None,
                   ) -> tuple[CtVolume, dict[str, Any]]:
    """A scan of a CatPhan and its ground truth. ``modules`` are module kinds
    (sensitometry, uniformity, resolution, low_contrast); default all.
    ``cupping_radius_mm`` switches on the model's ``cupping_hu`` over that radius (a
    cone-beam-like shading; the expected CT numbers then hold only at the centre)."""
    model = model or CtScannerModel()
    if catphan not in cp.MODELS:
        raise ValueError(f"unknown CatPhan {catphan!r}; known: {', '.join(cp.MODELS)}")
    mdl = cp.MODELS[catphan]
    kinds = list(modules) if modules else [m.kind for m in mdl.modules]
    chosen = [m for m in mdl.modules if m.kind in kinds]
    if len(chosen) != len(set(kinds)):
        raise ValueError(f"{mdl.name} has modules {', '.join(m.kind for m in mdl.modules)}; "
                         f"asked for {', '.join(kinds)}")
    spacing = slice_spacing_mm or slice_thickness_mm
    z0 = table_z_mm + shift_mm[2]
    half = cp.MODULE_DEPTH_MM / 2
    ranges = [(z0 + m.w_mm - half + spacing / 2, z0 + m.w_mm + half - spacing / 2)
              for m in chosen]
    if len(chosen) == len(mdl.modules):
        ws = [m.w_mm for m in mdl.modules]
        ranges = [(z0 + min(ws) - half - 10.0, z0 + max(ws) + half + 10.0)]
    z = _z_positions(ranges, spacing, drop_first, drop_last)
    matrix, fov = _grid(pixel_mm, fov_mm or 250.0)
    vol = acquire(cp.hu_map(catphan), model, fov_mm=fov, matrix=matrix, z_mm=z,
                  slice_thickness_mm=slice_thickness_mm, mode=mode, supersample=supersample,
                  seed=seed, rotation_deg=rotation_deg,
                  shift_mm=(shift_mm[0], shift_mm[1], z0), noise=noise,
                  reconstruction_diameter_mm=reconstruction_diameter_mm,
                  line_sources=cp.line_sources(catphan), cupping_radius_mm=cupping_radius_mm)
    truth: dict[str, Any] = {"kind": "ct-catphan", "phantom": mdl.name, "modules": kinds,
                             "scanner": model.to_dict(), **truth_jsonable(vol.truth)}
    if mode == "image":
        truth["expected"] = catphan_truth(model, vol, catphan)
    return vol, truth


def catphan_truth(model: CtScannerModel, vol: CtVolume, catphan: str) -> dict[str, Any]:
    mdl = cp.MODELS[catphan]
    off = model.hu_offset
    sens = mdl.module("sensitometry")
    assert sens is not None
    hu: dict[str, float] = {}
    ed = []
    for ins in sens.inserts:
        name = ins.material.name if ins.material.name not in hu else f"{ins.material.name}_2"
        value = ins.material.hu + (off if ins.material.hu > -500 else 0.0)
        hu[name] = value
        if ins.material.electron_density is not None and name == ins.material.name:
            ed.append((ins.material.electron_density, value))
    x = np.array([e[0] for e in ed])
    y = np.array([e[1] for e in ed])
    slope, icpt = np.polyfit(x, y, 1)
    r2 = 1.0 - float(((y - (slope * x + icpt)) ** 2).sum() / ((y - y.mean()) ** 2).sum())
    mtf, best = resolved_truth(model, vol.pixel_mm, cp.LINE_PAIRS_PER_CM)
    lc = mdl.module("low_contrast")
    unif = mdl.module("uniformity")
    return {
        "model": mdl.name,
        "ct_number_hu": hu,
        "hu_electron_density_slope_hu": float(slope),
        "hu_electron_density_intercept_hu": float(icpt),
        "hu_electron_density_r_squared": r2,
        "slice_thickness_mm": model.ssp_fwhm_mm(vol.slice_thickness_mm),
        "ct_number_centre_hu": (unif.background_hu + off) if unif else None,
        "noise_hu": vol.noise_sd_hu,
        "uniformity_deviation_hu": 0.0,
        "bar_modulation": {str(k): v for k, v in mtf.items()},
        "high_contrast_resolution_lp_per_cm": best,
        "mtf50_lp_per_cm": model.mtf50_lp_per_cm,
        "mtf10_lp_per_cm": model.mtf10_lp_per_cm,
        "low_contrast_contrast_hu": {f"{lvl:g}%": lvl * 10.0 for lvl in cp.LOW_CONTRAST_LEVELS}
        if lc else None,
        "nps_peak_frequency_per_mm": model.nps_peak_frequency_per_mm,
        "ctdivol_mgy": model.ctdivol_mgy,
        "pixel_mm": vol.pixel_mm,
        "nyquist_lp_per_cm": 10.0 / (2.0 * vol.pixel_mm),
        "electron_density_note": "fit over the inserts with a tabulated electron density",
    }
