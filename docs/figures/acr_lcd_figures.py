"""Regenerate the ACR low-contrast figures of docs/mr-acr.md from the shared real data.

    .venv/bin/python docs/figures/acr_lcd_figures.py [path/to/shared/data]

Writes ``docs/figures/acr-lcd-slice8.png``: slice 8 of the Siemens Aera 1.5 T T1 and the GE
SIGNA Artist 1.5 T T2 series (hazen's test data, ``mr/acr/`` of the shared data), the two
slices where scanbench's human-observer count differs from hazen's published score by more
than one spoke, and slice 9 of the Aera T2 with the disc pattern fitted on that slice alone
(blue) and jointly on slices 8-11 (green/red). Each row: the pixels alone (slow shading
removed: the slice minus its 10 mm Gaussian average inside the sheet; window ±2.5 SD;
magnified ×3, bicubic), and the same with every disc outlined (green: z ≥ 1.41, seen by the
observer model; red: not seen) and labelled with its z. Under the title of the two disputed
slices: how many disc-free places of the same slice read at least the decisive disc's z
(``acr_low_contrast.disc_free_z``: the disc statistic's empirical null).
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
         old: np.ndarray | None = None, note: str = "") -> Image.Image:
    a, b = _panel(acr, n, ev, False), _panel(acr, n, ev, True, old)
    top = 40 if note else 22
    row = Image.new("RGB", (a.width + b.width + 10, a.height + top), "white")
    row.paste(a, (0, top))
    row.paste(b, (a.width + 10, top))
    draw = ImageDraw.Draw(row)
    draw.text((4, 4), title, fill=(0, 0, 0), font=ImageFont.load_default(size=13))
    if note:
        draw.text((4, 21), note, fill=(0, 0, 0), font=ImageFont.load_default(size=11))
    return row


def _null_note(acr: AcrAxial, n: int, ev: dict[str, Any], count: int) -> str:
    """How often the disc-free places of the slice (the same template and background,
    ``lc.disc_free_z``) read at least as much as the decisive disc: the one that stopped the
    count, or the weakest disc counted."""
    sheet = (*ev["centre_uv"], ev["rim_radius"])
    image = lc.rim_corrected(acr, n, ev["centres"], sheet)
    z = np.asarray(ev["t"])
    if count < lc.N_SPOKES:
        k = count
        j = int(np.nanargmin(z[k]))
        what = "stopping"
    else:
        k, j = (int(i) for i in np.unravel_index(int(np.nanargmin(z)), z.shape))
        what = "weakest counted"
    free = lc.disc_free_z(acr, n, ev["centres"], ev["sigma"], sheet, image,
                          lc.DIAMETERS_MM[k])
    return (f"{what} disc (spoke {k + 1}, {lc.RING_RADII_MM[j]:g} mm ring) z {z[k, j]:.2f}: "
            f"{100 * np.mean(free >= z[k, j]):.1f} % of {free.size} disc-free places read as "
            f"much (their z: SD {free.std():.2f})")


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
        note = _null_note(acr, n, ev, count) if old is None else ""
        rows.append(_row(f"{name}, slice {n}: scanbench {count} spokes, {hz}{extra}",
                         acr, n, ev, old, note))
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
