"""Scatter fraction, count losses, randoms and NECR, NEMA NU 2-2018 section 4 (sinogram method).

Procedure (STANDARDS.md A.3; [P] points follow the public Austin Health
implementation of the standard, [U] points are stated as choices):

1. **Slices.** SSRB sinograms (the reader rebins oblique data). For an axial FOV
   over 650 mm only the planes within the central ``central_axial_mm`` (650 mm,
   [P]/[U]) are used; ``central_axial_mm=0`` uses every plane (a long-AFOV
   convention, recorded in the result).
2. **Mask.** Every sinogram pixel more than ``mask_mm`` (120 mm) from the
   phantom centre is set to zero ([P]).
3. **Peak alignment.** In every projection angle of every plane the row is
   shifted so that its maximum pixel sits on the centre pixel; the angles are then
   summed into one profile per plane ([P]).
4. **Band.** ``C_L`` and ``C_R``, the counts at -20 and +20 mm from the centre,
   are linearly interpolated; scatter + randoms under the 40 mm band is
   ``(C_L + C_R) / 2 x 40 mm / bin``, plus all counts outside the band
   (pixels straddling the band edge counted by the fraction outside) ([P]).
   ``C_TOT`` is the total of the profile.
5. **Rates** per frame, summed over planes: ``R_TOT = C_TOT / T``,
   ``R_t = (C_TOT - C_r+s) / T``, ``R_r`` from the delayed-window sinogram under
   the same mask (required: a file without delayed sinograms is refused),
   ``R_int`` the intrinsic (Lu-176) rate under the mask from the background
   frame(s) or ``intrinsic_cps`` ([U] formula), ``R_s = R_TOT - R_t - R_r - R_int``,
   ``SF = R_s / (R_t + R_s)``, ``NECR = R_t^2 / R_TOT`` ([P]).
6. **Activity.** The mean activity over each frame (decay integral) divided by
   the phantom volume (from the file's ``volume_ml``, else pi r^2 L).

Reported: per frame ``total_rate_kcps``, ``true_rate_kcps``, ``random_rate_kcps``,
``scatter_rate_kcps``, ``necr_kcps`` (labels ``frame``, ``activity_kbq_ml``);
``peak_necr_kcps``, ``activity_at_peak_necr_kbq_ml``, ``peak_true_rate_kcps``,
``activity_at_peak_true_rate_kbq_ml``, ``scatter_fraction_percent`` at peak NECR
and at low activity (frames whose randoms are under 1 % of trues, else the
lowest-activity frame, with a warning). Peaks are the highest frame, as
measured (no curve fit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from scanbench.analysis.base import Parameter
from scanbench.analysis.registry import register
from scanbench.errors import AnalysisError, InputError
from scanbench.rawdata import RawDataset, SinogramLayout
from scanbench.rawdata.analysis import RawOnly, common_parameters, float_param
from scanbench.types import Result

NEMA_MASK_MM = 120.0
NEMA_BAND_HALF_MM = 20.0
NEMA_CENTRAL_AXIAL_MM = 650.0
_BLOCK = 16


@dataclass
class FrameRates:
    index: int
    activity_kbq_ml: float
    total_cps: float
    true_cps: float
    random_cps: float
    scatter_cps: float
    intrinsic_cps: float

    @property
    def necr_cps(self) -> float:
        return self.true_cps**2 / self.total_cps if self.total_cps > 0 else 0.0

    @property
    def scatter_fraction(self) -> float:
        d = self.true_cps + self.scatter_cps
        return self.scatter_cps / d if d > 0 else float("nan")


def aligned_profiles(sino: np.ndarray, layout: SinogramLayout, mask_mm: float) -> np.ndarray:
    """NEMA steps 2-3: mask beyond ``mask_mm``, shift each projection's maximum to the centre
    pixel, sum the angles. ``sino`` is (planes, views, bins); returns (planes, bins)."""
    s = layout.bin_s_mm()
    masked = np.where(np.abs(s) <= mask_mm, sino, 0.0)
    n = layout.n_bins
    c = n // 2
    peak = np.argmax(masked, axis=2)  # (planes, views)
    idx = np.arange(n)[None, None, :] - c + peak[:, :, None]
    valid = (idx >= 0) & (idx < n)
    shifted = np.take_along_axis(masked, np.clip(idx, 0, n - 1), axis=2)
    shifted = np.where(valid, shifted, 0.0)
    return shifted.sum(axis=1, dtype=np.float64)


def band_split(profiles: np.ndarray, bin_mm: float, half_mm: float = NEMA_BAND_HALF_MM
               ) -> tuple[np.ndarray, np.ndarray]:
    """NEMA step 4 on aligned profiles (planes, bins): (C_TOT, C_r+s) per plane."""
    n = profiles.shape[1]
    c = n // 2
    x = (np.arange(n) - c) * bin_mm
    grid = np.arange(n, dtype=float)
    c_l = np.array([np.interp(c - half_mm / bin_mm, grid, p) for p in profiles])
    c_r = np.array([np.interp(c + half_mm / bin_mm, grid, p) for p in profiles])
    lo, hi = x - bin_mm / 2, x + bin_mm / 2
    inside = np.clip(np.minimum(hi, half_mm) - np.maximum(lo, -half_mm), 0, None) / bin_mm
    outside = 1.0 - inside
    c_rs = (c_l + c_r) / 2.0 * (2 * half_mm / bin_mm) + profiles @ outside
    return profiles.sum(axis=1), c_rs


# Measurements that rest on the scatter estimate, and so on the intrinsic rate subtracted
_SCATTER_DEPENDENT = frozenset({"scatter_rate_kcps", "necr_kcps", "peak_necr_kcps",
                                "activity_at_peak_necr_kbq_ml", "scatter_fraction_percent"})


@register
class CountRate(RawOnly):
    """NEMA NU 2-2018 section 4: scatter fraction, count losses, randoms and NECR."""

    id: ClassVar[str] = "pet.nema_nu2_2018.count_rate"
    modality: ClassVar[str] = "PT"
    standard: ClassVar[str] = (
        "NEMA NU 2-2018 section 4: scatter fraction, count losses and randoms (see "
        "docs/standards/nema-nu2-2018.md#scatter-fraction-count-losses-and-randoms)")
    title: ClassVar[str] = "PET count rate: NECR, scatter fraction (scatter phantom sinograms)"

    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("mask_mm", "sinogram pixels farther than this from the phantom centre "
                  "are set to zero", "mm", 120.0),
        Parameter("band_half_width_mm", "half-width of the band around the line-source "
                  "peak inside which scatter and randoms are interpolated", "mm", 20.0),
        Parameter("central_axial_mm", "only slices within this central axial length are "
                  "analysed", "mm", "650 when the axial field of view is longer, else all"),
        Parameter("volume_ml", "phantom volume, for the activity-concentration axis", "mL",
                  "from the file's phantom volume, or its diameter and length"),
        Parameter("activity_bq", "line-source activity at the file's reference time", "Bq",
                  "from the file (/phantom activity_bq); required if the file has none"),
        Parameter("intrinsic_cps", "intrinsic (Lu-176) true-coincidence rate to subtract",
                  "cps", "measured from a background frame if the file has one, else 0 "
                  "with the scatter and NECR values not judged"),
    )

    def detect_raw(self, dataset: RawDataset) -> float:
        if dataset.kind != "sinogram":
            return 0.0
        if dataset.purpose == "count_rate":
            return 0.95
        source = [f for f in dataset.frames if f.attrs.get("role") != "background"]
        no_sleeves = all(f.attrs.get("sleeves") is None for f in source)
        return 0.6 if len(source) >= 5 and no_sleeves else 0.1

    def run_raw(self, dataset: RawDataset, **params: Any) -> Result:
        layout = dataset.layout
        if layout is None:
            raise InputError("sinogram without geometry: no sinogram layout", dataset.where)
        mask_mm = float_param(params, "mask_mm", NEMA_MASK_MM) or NEMA_MASK_MM
        half_band = float_param(params, "band_half_width_mm", NEMA_BAND_HALF_MM) \
            or NEMA_BAND_HALF_MM
        afov = dataset.geometry.axial_fov_mm
        central = float_param(params, "central_axial_mm",
                              NEMA_CENTRAL_AXIAL_MM if afov > NEMA_CENTRAL_AXIAL_MM else 0.0)
        planes = np.ones(layout.n_planes, dtype=bool) if not central else \
            np.abs(layout.plane_z_mm) <= central / 2.0 + 1e-6
        volume = float_param(params, "volume_ml", None) or dataset.phantom.get("volume_ml")
        if volume is None and {"diameter_mm", "length_mm"} <= set(dataset.phantom):
            volume = math.pi * (float(dataset.phantom["diameter_mm"]) / 2) ** 2 \
                * float(dataset.phantom["length_mm"]) / 1000.0
        activity = float_param(params, "activity_bq", None)
        if activity is not None:
            dataset.phantom["activity_bq"] = activity
            dataset.phantom.setdefault("activity_time_s", 0.0)
        if volume is None or dataset.phantom.get("activity_bq") is None:
            raise AnalysisError("the phantom's activity and volume are needed for the "
                                "activity-concentration axis (/phantom activity_bq and "
                                "volume_ml, or --param activity_bq=... volume_ml=...)",
                                dataset.where)
        result = Result(analysis=self.id, standard=self.standard, series_instance_uid=None,
                        device=dataset.device, acquired_at=dataset.acquired_at,
                        source=dataset.where)
        s_mask = np.abs(layout.bin_s_mm()) <= mask_mm
        r_int, int_how = self._intrinsic(dataset, params, planes, s_mask)
        if "none" in int_how:
            result.warnings.append("intrinsic (Lu-176) rate not subtracted (no background frame, "
                                   "no intrinsic_cps): for LSO/LYSO it is counted as scatter")
        frames = [f for f in dataset.frames if f.attrs.get("role") != "background"]
        if len(frames) < 3:
            raise AnalysisError(f"{len(frames)} source frame(s); the count-rate curve needs "
                                "frames over the decay of the source", dataset.where)
        rows: list[FrameRates] = []
        for f in frames:
            delayed = dataset.delayed(f.index)
            if delayed is None:
                raise InputError(f"frame {f.index}: missing delayed sinogram; the randoms rate "
                                 "R_r (and so the scatter fraction) needs the delayed-window "
                                 "sinograms", dataset.where)
            prompts = dataset.prompts(f.index)[planes]
            # in blocks of planes: the alignment's index arrays stay small for 2 m scanners
            prof = np.concatenate([aligned_profiles(prompts[b:b + _BLOCK], layout, mask_mm)
                                   for b in range(0, len(prompts), _BLOCK)])
            del prompts
            c_tot, c_rs = band_split(prof, layout.bin_size_mm, half_band)
            t = f.duration_s
            tot = float(c_tot.sum()) / t
            true = float((c_tot - c_rs).sum()) / t
            rnd = float(delayed[planes][..., s_mask].sum(dtype=np.float64)) / t
            sc = tot - true - rnd - r_int
            a = dataset.mean_activity_bq(f)
            assert a is not None
            rows.append(FrameRates(f.index, a / volume / 1000.0, tot, true, rnd, sc, r_int))
        for r in rows:
            lab = {"frame": r.index, "activity_kbq_ml": round(r.activity_kbq_ml, 3)}
            result.add("total_rate_kcps", r.total_cps / 1000, "kcps", labels=dict(lab))
            result.add("true_rate_kcps", r.true_cps / 1000, "kcps", labels=dict(lab))
            result.add("random_rate_kcps", r.random_cps / 1000, "kcps", labels=dict(lab))
            result.add("scatter_rate_kcps", r.scatter_cps / 1000, "kcps", labels=dict(lab))
            result.add("necr_kcps", r.necr_cps / 1000, "kcps", labels=dict(lab))
        k = int(np.argmax([r.necr_cps for r in rows]))
        kt = int(np.argmax([r.true_cps for r in rows]))
        result.add("peak_necr_kcps", rows[k].necr_cps / 1000, "kcps")
        result.add("activity_at_peak_necr_kbq_ml", rows[k].activity_kbq_ml, "kBq/mL")
        result.add("peak_true_rate_kcps", rows[kt].true_cps / 1000, "kcps")
        result.add("activity_at_peak_true_rate_kbq_ml", rows[kt].activity_kbq_ml, "kBq/mL")
        result.add("scatter_fraction_percent", 100 * rows[k].scatter_fraction, "%",
                   labels={"activity": "peak_necr"})
        low = [r for r in rows if r.true_cps > 0 and r.random_cps / r.true_cps < 0.01]
        if not low:
            low = [min(rows, key=lambda r: r.activity_kbq_ml)]
            result.warnings.append(
                f"no frame has randoms under 1 % of trues; the low-activity scatter fraction is "
                f"from the lowest-activity frame ({low[0].activity_kbq_ml:.3g} kBq/mL)")
        sf_low = 100 * sum(r.scatter_cps for r in low) / sum(r.true_cps + r.scatter_cps
                                                            for r in low)
        result.add("scatter_fraction_percent", sf_low, "%", labels={"activity": "low"})
        if k == 0:
            result.warnings.append("the NECR is highest in the first frame: the acquisition "
                                   "did not start above the peak, so the peak is a lower bound")
        if "none" in int_how:  # no silent default (issue 11): what rests on it is not judged
            for m in result.measurements:
                if m.name in _SCATTER_DEPENDENT:
                    m.not_judged("intrinsic (Lu-176) rate neither measured (no background "
                                 "frame in the file) nor given, so it is counted as scatter; "
                                 "give --param intrinsic_cps=... (0 for a scanner whose "
                                 "crystals hold no radioactivity, e.g. BGO)")
        result.parameters = {
            **common_parameters(dataset), "mask_mm": mask_mm,
            "band_half_width_mm": half_band,
            "central_axial_mm": central or "all planes",
            "planes_used": int(planes.sum()), "volume_ml": round(float(volume), 1),
            "intrinsic_cps": round(r_int, 2), "intrinsic_from": int_how,
            "low_activity_frames": [r.index for r in low],
        }
        result.evidence = {"rows": [r.__dict__ | {"necr_cps": r.necr_cps} for r in rows],
                           "peak_frame": k}
        return result

    @staticmethod
    def _intrinsic(dataset: RawDataset, params: dict[str, Any], planes: np.ndarray,
                   s_mask: np.ndarray) -> tuple[float, str]:
        given = float_param(params, "intrinsic_cps", None)
        if given is not None:
            return given, "parameter intrinsic_cps"
        bgs = [f for f in dataset.frames if f.attrs.get("role") == "background"]
        if not bgs:
            return 0.0, "none"
        counts = 0.0
        t = 0.0
        for f in bgs:
            d = dataset.delayed(f.index)
            net = dataset.prompts(f.index)[planes][..., s_mask].sum(dtype=np.float64)
            if d is not None:
                net -= d[planes][..., s_mask].sum(dtype=np.float64)
            counts += float(net)
            t += f.duration_s
        return counts / t, f"background frame(s) {', '.join(str(f.index) for f in bgs)}"

    def figures(self, result: Result) -> list[Any]:
        """The count-rate curves against activity concentration, NECR peak marked."""
        import plotly.graph_objects as go

        ev = result.evidence
        if not ev:
            return []
        rows = ev["rows"]
        x = [r["activity_kbq_ml"] for r in rows]
        fig = go.Figure()
        for key, name in (("total_cps", "total"), ("true_cps", "trues"),
                          ("random_cps", "randoms"), ("scatter_cps", "scatter"),
                          ("necr_cps", "NECR")):
            fig.add_trace(go.Scatter(x=x, y=[r[key] / 1000 for r in rows], mode="lines+markers",
                                     name=name))
        k = ev["peak_frame"]
        fig.add_trace(go.Scatter(x=[x[k]], y=[rows[k]["necr_cps"] / 1000], mode="markers",
                                 marker={"size": 14, "symbol": "star"}, name="peak NECR"))
        fig.update_layout(title="Count rates against activity concentration (NEMA NU 2-2018 §4)",
                          xaxis_title="activity concentration (kBq/mL)", yaxis_title="kcps")
        sf = go.Figure(go.Scatter(x=x, y=[100 * r["scatter_cps"] / (r["true_cps"]
                                                                   + r["scatter_cps"])
                                          for r in rows], mode="lines+markers"))
        sf.update_layout(title="Scatter fraction against activity concentration",
                         xaxis_title="activity concentration (kBq/mL)",
                         yaxis_title="scatter fraction (%)")
        return [fig, sf]
