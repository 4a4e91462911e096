"""Daily CT QC on a uniform water phantom: CT number of water, noise and uniformity.

IEC 61223-3-5 / AAPM TG-233 (STANDARDS.md B.2) and the ACR CT uniformity test
(B.1), on each slice and on the series:

- The phantom (a water cylinder of any diameter) is found in each slice
  (:func:`scanbench.analysis.ct.common.find_section`): centre and
  area-equivalent outer radius R. Slices without the phantom are skipped with
  a warning; a phantom cut by the reconstruction circle is an error.
- The uniform region: from the centre outwards, up to the first 1 mm ring
  whose mean leaves the centre value by more than 30 HU
  (:func:`~scanbench.analysis.ct.common.uniform_radius`): the inside of a water
  phantom's acrylic wall, or the CatPhan CTP486 module inside its housing.
- ROIs: circles of diameter ``roi_diameter_mm`` (default 10 % of the uniform
  region's diameter, at least 10 mm: a scanbench choice [U], IEC's exact ROI
  size was not read). The centre ROI sits on the axis; the four peripheral
  ROIs at 12, 3, 6 and 9 o'clock as seen on the image (12 = anterior, top;
  3 = image right), their outer edge ``edge_distance_mm`` (default 10 mm,
  "about 1 cm inside the edge", B.2) inside the uniform region's edge.
- ``ct_number_water_hu`` — mean of the centre ROI (area-weighted, partial
  pixels counted by their fraction inside);
- ``noise_hu`` — SD of the centre ROI;
- ``uniformity_deviation_hu{position}`` — peripheral ROI mean − centre ROI mean;
- ``uniformity_max_deviation_hu`` — the largest |deviation| of the four.

Each per-slice measurement carries labels ``slice`` (1-based, in order along
z) and ``z_mm``; the series values (label ``slice: "all"``) are the means of
the per-slice values (noise: the root mean square of the slice SDs; maximum
deviation: from the series-mean deviations). Uncertainties of means are the
standard error of one ROI mean in this image's correlated noise
(:func:`scanbench.analysis.ct.common.roi_mean_standard_error`), divided by
√(slices) for the series.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from scipy import ndimage

from scanbench.analysis.base import Parameter, result_for
from scanbench.analysis.ct.common import (
    RoiStats,
    Section,
    check_axial,
    find_section,
    reconstruction_mask,
    roi_mean_standard_error,
    roi_stats,
    series_where,
    uniform_radius,
)
from scanbench.analysis.memo import memo
from scanbench.analysis.registry import register
from scanbench.errors import AnalysisError
from scanbench.types import Result, Series

#: The largest :attr:`Section.roundness` (SD of the outline's distance from the centre
#: over the radius) of a water phantom's circular section, for detection.
ROUND = 0.04
POSITIONS = {"12 o'clock": (-1.0, 0.0), "3 o'clock": (0.0, 1.0), "6 o'clock": (1.0, 0.0),
             "9 o'clock": (0.0, -1.0)}  # unit (row, column) directions on the image


def uniform_interior(series: Series) -> dict[str, Any]:
    """Per slice: the section and whether its interior is uniform (memoised for detect/run).

    Per slice with a phantom: the 99.9th percentile (``spread``) and the maximum
    (``speck``) of the |deviation from the interior median| of the image
    smoothed over ~2 mm — a bead, an insert, a bar pattern give hundreds of HU,
    noise a few — both scaled down by the smoothed noise SD / 8 HU when the
    noise is larger than that (a low-dose scan), and the interior median HU.
    """
    def compute() -> dict[str, Any]:
        v = series.voxels
        dy, dx = series.spacing[1], series.spacing[2]
        out: dict[str, Any] = {"sections": [], "spread": [], "median": [], "errors": []}
        for k, sec in sampled_sections(series):
            if isinstance(sec, str):
                out["errors"].append(sec)
                continue
            img = np.asarray(v[k], dtype=np.float64)
            r_u, _host = uniform_radius(img, sec, (dy, dx))
            yy, xx = np.mgrid[:img.shape[0], :img.shape[1]]
            r = np.hypot((yy - sec.centre_yx[0]) * dy, (xx - sec.centre_yx[1]) * dx)
            interior = r < 0.85 * r_u
            smooth = ndimage.uniform_filter(img, size=max(1, round(2.0 / dx)))
            med = float(np.median(img[interior]))
            dev = np.abs(smooth[interior] - med)
            out["sections"].append((k, sec))
            out.setdefault("uniform_fraction", []).append(r_u / sec.radius_mm)
            # Noise level of the smoothed image (robust: MAD), so that thresholds hold
            # at any dose: objects stand out against it, noise does not.
            sigma = 1.4826 * float(np.median(dev))
            out["spread"].append(float(np.percentile(dev, 99.9)) / max(1.0, sigma / 8.0))
            out.setdefault("speck", []).append(float(dev.max()) / max(1.0, sigma / 8.0))
            out["median"].append(med)
        return out
    return memo(series, "ct.uniform_interior", compute)


def sampled_sections(series: Series) -> list[tuple[int, Section | str]]:
    """The section (:func:`find_section`) of about a dozen slices spread over the series,
    or why there is none (its error message): the first step of
    :func:`uniform_interior`, memoised."""
    def compute() -> list[tuple[int, Section | str]]:
        v = series.voxels
        dy, dx = series.spacing[1], series.spacing[2]
        out: list[tuple[int, Section | str]] = []
        for k in range(0, v.shape[0], max(1, v.shape[0] // 12)):
            try:
                out.append((k, find_section(np.asarray(v[k], dtype=np.float64), (dy, dx))))
            except AnalysisError as exc:
                out.append((k, exc.message))
        return out
    return memo(series, "ct.water.sections", compute)


def uniform_score(series: Series) -> float:
    """How sure (0..1) that the series is a uniform water-like cylinder (no inserts)."""
    if series.facts.modality != "CT":
        return 0.0
    try:
        check_axial(series)
        # The score is 0.9 × (the fraction of sections that are round) × ...: with no
        # round section it is 0 whatever the interiors hold, so a patient's series (not
        # one round section) is not looked into further
        if not any(not isinstance(sec, str) and sec.roundness < ROUND
                   for _k, sec in sampled_sections(series)):
            return 0.0
        info = uniform_interior(series)
    except AnalysisError:
        return 0.0
    if not info["sections"]:
        return 0.0
    secs = [s for _, s in info["sections"]]
    round_ok = float(np.mean([s.roundness < ROUND for s in secs]))
    med = float(np.median(info["median"]))
    water_like = 1.0 if abs(med) < 60 else (0.4 if abs(med) < 150 else 0.0)
    # Noise alone gives a 99.9th-percentile deviation of a few SD of the smoothed image;
    # a water phantom is uniform in (nearly) every slice, a phantom with modules is not
    # (ACR 464, a full CatPhan: inserts, bars, beads in most slices).
    spread = np.asarray(info["spread"])
    flat_fraction = float(np.mean(spread < 40)) + 0.5 * float(np.mean((spread >= 40)
                                                                      & (spread < 80)))
    flat = 1.0 if flat_fraction >= 0.9 else (0.5 if flat_fraction >= 0.75 else 0.0)
    # Small dense objects (the distance BBs of ACR module 3, a bead) are not in a water
    # phantom: smoothed over 2 mm, noise stays within tens of HU of the median.
    if max(info["speck"]) > 150.0:
        flat *= 0.5
    # A water phantom is uniform to its thin wall; a uniform module inside a housing
    # (CatPhan CTP486) scores lower, so its own analysis wins when it recognises it.
    fraction = float(np.median(info["uniform_fraction"]))
    shell = 1.0 if fraction > 0.9 else (0.7 if fraction > 0.6 else 0.0)
    return 0.9 * round_ok * water_like * flat * shell


@register
class WaterPhantomQc:
    """Daily CT QC on a uniform water phantom (module docstring)."""

    id: ClassVar[str] = "ct.water"
    modality: ClassVar[str] = "CT"
    standard: ClassVar[str] = (
        "IEC 61223-3-5:2019: water phantom CT number, noise and uniformity; centre-to-edge "
        "uniformity as in the ACR CT phantom scoring (see "
        "docs/standards/iec-aapm-ct.md#water-phantom-ct-number-noise-uniformity)")
    title: ClassVar[str] = "CT water phantom: CT number, noise, uniformity"

    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("edge_distance_mm", "the peripheral ROIs are this far inside the edge of "
                  "the water", "mm", 10.0),
        Parameter("roi_diameter_mm", "diameter of the centre and peripheral ROIs", "mm",
                  "10 % of the water diameter, at least 10 mm"),
    )

    def detect(self, series: Series) -> float:
        return uniform_score(series)

    def run(self, series: Series, **params: Any) -> Result:
        where = series_where(series)
        check_axial(series)
        _dz, dy, dx = series.spacing
        v = series.voxels
        result = result_for(self, series)
        edge_mm = float(params.get("edge_distance_mm", 10.0))
        per_slice: list[dict[str, Any]] = []
        skipped = []
        first_error = None
        for k in range(v.shape[0]):
            img = np.asarray(v[k], dtype=np.float64)
            inside = reconstruction_mask(img)
            try:
                sec = find_section(img, (dy, dx), where, inside=inside)
            except AnalysisError as exc:
                if "cut by the reconstruction circle" in exc.message:
                    raise
                skipped.append(k)
                first_error = first_error or exc.message
                continue
            r_u, _host = uniform_radius(img, sec, (dy, dx))
            roi_r = float(params.get("roi_diameter_mm", max(10.0, 0.1 * 2 * r_u))) / 2
            dist = r_u - edge_mm - roi_r
            if dist < 2 * roi_r:
                raise AnalysisError(f"the phantom (diameter {2 * sec.radius_mm:.0f} mm) is too "
                                    "small for a centre and four peripheral ROIs", where)
            if sec.roundness > 0.06:
                raise AnalysisError(
                    f"slice {k + 1}: the object is not a circular cylinder (boundary radius "
                    f"varies by {100 * sec.roundness:.0f} %): not a water phantom", where)
            yy, xx = np.mgrid[:img.shape[0], :img.shape[1]]
            r = np.hypot((yy - sec.centre_yx[0]) * dy, (xx - sec.centre_yx[1]) * dx)
            interior = r < r_u - edge_mm
            # Smoothed over ~2 mm so that noise of a low-dose scan is not taken for objects.
            smooth = ndimage.uniform_filter(img, size=max(1, round(2.0 / dx)))
            smooth_dev = np.abs(smooth[interior] - np.median(img[interior]))
            if np.percentile(smooth_dev, 99.9) > 300:
                raise AnalysisError(f"slice {k + 1}: the phantom's interior is not uniform "
                                    "(objects of hundreds of HU inside): not a water phantom; "
                                    "for an ACR or CatPhan phantom use its analysis", where)
            se = roi_mean_standard_error(img, sec.centre_yx, r_u - edge_mm, roi_r,
                                         (dy, dx))
            centre = roi_stats(img, sec.centre_yx, roi_r, (dy, dx),
                               None if math.isnan(se) else se)
            devs = {}
            for name, (uy, ux) in POSITIONS.items():
                pc = (sec.centre_yx[0] + uy * dist / dy, sec.centre_yx[1] + ux * dist / dx)
                ps = roi_stats(img, pc, roi_r, (dy, dx), None if math.isnan(se) else se)
                devs[name] = (ps.mean - centre.mean, math.hypot(ps.standard_error,
                                                                centre.standard_error), pc)
            z = float(series.index_to_patient((k, 0, 0))[2])
            per_slice.append({"k": k, "z": z, "centre": centre, "devs": devs, "sec": sec,
                              "roi_r": roi_r, "dist": dist, "r_u": r_u})
        if not per_slice:
            raise AnalysisError(f"no slice shows a water phantom ({first_error})", where)
        if skipped:
            listed = ", ".join(str(k + 1) for k in skipped[:10])
            more = " ..." if len(skipped) > 10 else ""
            result.warnings.append(f"{len(skipped)} slice(s) without the phantom skipped "
                                   f"(slices {listed}{more})")
        for i, s in enumerate(per_slice):
            labels = {"slice": i + 1, "z_mm": round(s["z"], 2)}
            cs: RoiStats = s["centre"]
            result.add("ct_number_water_hu", cs.mean, "HU", labels=dict(labels),
                       uncertainty=cs.standard_error)
            result.add("noise_hu", cs.sd, "HU", labels=dict(labels))
            for name, (d, u, _c) in s["devs"].items():
                result.add("uniformity_deviation_hu", d, "HU",
                           labels={**labels, "position": name}, uncertainty=u)
            result.add("uniformity_max_deviation_hu",
                       max(abs(d) for d, _u, _c in s["devs"].values()), "HU",
                       labels=dict(labels))
        n = len(per_slice)
        allv = {"slice": "all"}
        means = np.array([s["centre"].mean for s in per_slice])
        ses = np.array([s["centre"].standard_error for s in per_slice])
        result.add("ct_number_water_hu", float(means.mean()), "HU", labels=dict(allv),
                   uncertainty=float(math.sqrt((ses**2).sum()) / n))
        result.add("noise_hu", float(np.sqrt(np.mean([s["centre"].sd ** 2 for s in per_slice]))),
                   "HU", labels=dict(allv))
        series_dev = {}
        for name in POSITIONS:
            d = np.array([s["devs"][name][0] for s in per_slice])
            u = np.array([s["devs"][name][1] for s in per_slice])
            series_dev[name] = float(d.mean())
            result.add("uniformity_deviation_hu", float(d.mean()), "HU",
                       labels={**allv, "position": name},
                       uncertainty=float(math.sqrt((u**2).sum()) / n))
        result.add("uniformity_max_deviation_hu", max(abs(d) for d in series_dev.values()),
                   "HU", labels=dict(allv))
        mid = per_slice[n // 2]
        result.parameters.update({
            "roi_diameter_mm": round(2 * mid["roi_r"], 2),
            "edge_distance_mm": edge_mm,
            "phantom_diameter_mm": round(2 * float(np.mean([s["sec"].radius_mm
                                                              for s in per_slice])), 2),
            "uniform_diameter_mm": round(2 * float(np.mean([s["r_u"] for s in per_slice])), 2),
            "slices_analysed": n,
        })
        result.evidence = {
            "slice_image": np.asarray(v[mid["k"]], dtype=np.float32), "spacing_yx": (dy, dx),
            "centre_yx": mid["sec"].centre_yx, "radius_mm": mid["sec"].radius_mm,
            "roi_radius_mm": mid["roi_r"],
            "peripheral": {name: c for name, (_d, _u, c) in mid["devs"].items()},
            "slice_z_mm": mid["z"], "z_mm": [s["z"] for s in per_slice],
            "centre_means": means.tolist(), "noise": [s["centre"].sd for s in per_slice],
        }
        return result

    def figures(self, result: Result) -> list[Any]:
        """The middle slice with the five ROIs, and CT number and noise along z."""
        import plotly.graph_objects as go

        from scanbench.report.figures import CT_SOFT_TISSUE, RoiShape, slice_with_rois
        from scanbench.report.numbers import format_number

        ev = result.evidence
        if not ev:
            return []
        rois = [RoiShape(ev["centre_yx"], ev["radius_mm"], "phantom", "#888888"),
                RoiShape(ev["centre_yx"], ev["roi_radius_mm"], "centre", "#e6194b")]
        rois += [RoiShape(c, ev["roi_radius_mm"], name) for name, c in ev["peripheral"].items()]
        fig1 = slice_with_rois(ev["slice_image"], ev["spacing_yx"], rois,
                               "Water phantom, z = "
                               f"{format_number(ev['slice_z_mm'], decimals=1)} mm",
                               unit="HU", view_margin_mm=10.0, window=CT_SOFT_TISSUE)
        fig2 = go.Figure()
        fig2.add_trace(go.Scatter(x=ev["z_mm"], y=ev["centre_means"], mode="lines+markers",
                                  name="CT number (centre ROI)"))
        fig2.add_trace(go.Scatter(x=ev["z_mm"], y=ev["noise"], mode="lines+markers",
                                  name="noise (SD, centre ROI)", yaxis="y2"))
        fig2.update_layout(title_text="CT number and noise along the phantom",
                           xaxis_title="z (mm)", yaxis_title="HU",
                           yaxis2={"title": "SD (HU)", "overlaying": "y", "side": "right"},
                           template="simple_white")
        return [fig1, fig2]
