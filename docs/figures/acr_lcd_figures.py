"""Regenerate the ACR low-contrast figures of docs/mr-acr.md from the shared real data.

    .venv/bin/python docs/figures/acr_lcd_figures.py [path/to/shared/data]

Writes ``docs/figures/acr-lcd-slice8.png``: slice 8 of the Siemens Aera 1.5 T T1 and the GE
SIGNA Artist 1.5 T T2 series (hazen's test data, ``mr/acr/`` of the shared data), the two
slices where scanbench's human-observer count differs from hazen's published score by more
than one spoke, and slice 9 of the Aera T2 with the disc pattern fitted on that slice alone
(blue) and jointly on slices 8-11 (green/red). Each row: the pixels alone (slow shading
removed: the slice minus its 10 mm Gaussian average inside the sheet; window ±2.5 SD;
magnified ×3, bicubic), and the same with every disc outlined (green: z ≥ 1.41, seen by the
observer model; red: not seen) and labelled with its z.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy.ndimage import gaussian_filter

from scanbench import dicom
from scanbench.analysis.mr import acr_low_contrast as lc
from scanbench.analysis.mr.acr_locate import AcrAxial, axial_geometry

HERE = Path(__file__).resolve().parent
SCALE = 3
HALF_MM = 46.0


def _panel(acr: AcrAxial, n: int, ev: dict[str, Any], overlay: bool,
           old: np.ndarray | None = None) -> Image.Image:
    cu, cv = ev["centre_uv"]
    img = acr.image(n)
    sr, sc = (float(v) for v in acr.to_pixel(n, np.array(cu), np.array(cv)))
    py, px = acr.pixel_mm
    h_r, h_c = round(HALF_MM / py), round(HALF_MM / px)
    r0, c0 = round(sr) - h_r, round(sc) - h_c
    crop = np.asarray(img[r0: r0 + 2 * h_r + 1, c0: c0 + 2 * h_c + 1], dtype=float)
    rr, cc = np.mgrid[0: crop.shape[0], 0: crop.shape[1]]
    inside = np.hypot((rr - (sr - r0)) * py, (cc - (sc - c0)) * px) < 42.0
    s = 10.0 / py
    shading = (gaussian_filter(np.where(inside, crop, 0.0), s)
               / np.maximum(gaussian_filter(inside.astype(float), s), 1e-6))
    flat = np.where(inside, crop - shading, 0.0)
    sd = float(np.std(flat[inside]))
    grey = np.clip(flat / (5.0 * sd) + 0.5, 0.0, 1.0) * 255
    im = Image.fromarray(grey.astype(np.uint8)).resize(
        (crop.shape[1] * SCALE, crop.shape[0] * SCALE), Image.Resampling.BICUBIC).convert("RGB")
    if not overlay:
        return im
    draw = ImageDraw.Draw(im)
    font = ImageFont.load_default(size=11)

    def circles(centres: np.ndarray, colour_of: Any, labels: bool) -> None:
        rows, cols = acr.to_pixel(n, centres.real, centres.imag)
        for k, j in np.ndindex(centres.shape):
            y = float(rows[k, j] - r0 + 0.5) * SCALE
            x = float(cols[k, j] - c0 + 0.5) * SCALE
            r = lc.DIAMETERS_MM[k] / 2 / py * SCALE + 2
            draw.ellipse([x - r, y - r, x + r, y + r], outline=colour_of(k, j), width=1)
            if labels:
                draw.text((x + r + 1, y - 6), f"{ev['t'][k, j]:.1f}", fill=(255, 230, 0),
                          font=font)

    if old is not None:
        circles(old, lambda k, j: (60, 140, 255), False)
    circles(ev["centres"], lambda k, j: (40, 220, 40) if ev["seen"][k, j] else (255, 40, 40),
            True)
    return im


def _row(title: str, acr: AcrAxial, n: int, ev: dict[str, Any],
         old: np.ndarray | None = None) -> Image.Image:
    a, b = _panel(acr, n, ev, False), _panel(acr, n, ev, True, old)
    row = Image.new("RGB", (a.width + b.width + 10, a.height + 22), "white")
    row.paste(a, (0, 22))
    row.paste(b, (a.width + 10, 22))
    ImageDraw.Draw(row).text((4, 4), title, fill=(0, 0, 0), font=ImageFont.load_default(size=13))
    return row


def main(shared: Path) -> None:
    rows = []
    cases = (("Siemens_Aera_1.5T_T1", 8, "hazen 8"), ("GE_Signa_Artist_1.5T_T2", 8, "hazen 5"),
             ("Siemens_Aera_1.5T_T2", 9, "no published score"))
    for name, n, hz in cases:
        series = dicom.read([shared / "mr" / "acr" / name]).series[0]
        acr = axial_geometry(series)
        result = lc.AcrLowContrast().run(series)
        ev = result.evidence["slices"][n]
        count = int(result.get("spokes_detected", slice=n).value)
        old = ev["centres_single"] if name == "Siemens_Aera_1.5T_T2" else None
        extra = " (blue: fitted on this slice alone)" if old is not None else ""
        rows.append(_row(f"{name}, slice {n}: scanbench {count} spokes, {hz}{extra}",
                         acr, n, ev, old))
    width = max(row.width for row in rows)
    out = Image.new("RGB", (width, sum(row.height + 8 for row in rows)), "white")
    y = 0
    for row in rows:
        out.paste(row, (0, y))
        y += row.height + 8
    # a 128-colour palette keeps the PNG small (greyscale plus the few overlay colours)
    out.quantize(colors=128).save(HERE / "acr-lcd-slice8.png", optimize=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/work/shared/data"))
