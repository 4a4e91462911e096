"""Accuracy of the count-loss and randoms corrections, NEMA NU 2-2018 section 4 (accuracy).

Procedure (STANDARDS.md A.4; the 180 mm ROI is [U] there and a parameter here):

1. **Frames.** Every frame of the count-rate acquisition reconstructed with all
   the clinical corrections, one PET series (or volume) per frame, in one study.
   Series of one study that show the count-rate phantom's line source (a thin hot
   line along the axis, at the same place in every slice) are taken together
   through the multi-series hook, in acquisition order; at least ``n_low + 2``.
2. **ROI.** In every slice a circle of ``roi_diameter_mm`` (180 mm) centred on
   the phantom (``phantom_centre_mm=x,y``; default the scanner axis, where NEMA
   places the phantom); the ROI total ``C_ij`` (Bq) is the sum of its voxels
   times the voxel volume, so the line source's whole activity is counted.
3. **Common time.** Each frame's values are referred to the first frame's start
   with the decay correction the header states (START: each frame's start;
   ADMIN: the injection; NONE: the frame's decay integral), so a perfect system
   gives the same ``C_ij`` in every frame.
4. **Extrapolated rate.** ``R_extr,i`` is the mean over the ``n_low`` (3)
   lowest-activity frames, where count losses and randoms are negligible (for
   decay-corrected data the NEMA linear extrapolation through the origin from
   these frames is this constant), and ``dR_ij = 100 (C_ij / R_extr,i - 1)``.
   Slices holding under 5 % of the busiest slice's activity are left out.
5. **Report.** ``rate_error_percent`` per frame (the largest |dR| over the
   slices, labelled with the frame's activity concentration: header activity
   decayed to the frame, over ``volume_ml``, default the 203 x 700 mm cylinder)
   and ``max_rate_error_percent``, the largest |dR| for activities up to and
   including the peak-NECR activity (``peak_necr_kbq_ml``, from the count-rate
   result; without it every frame counts, with a warning).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from scanbench.analysis.base import Parameter, result_for
from scanbench.analysis.registry import register
from scanbench.errors import AnalysisError, MissingTagError
from scanbench.types import Result, Series

ROI_DIAMETER_MM = 180.0
NEMA_PHANTOM_ML = math.pi * 101.5**2 * 700.0 / 1000.0


def _is_line_phantom(series: Series) -> bool:
    """A thin hot line along z: every slice's maximum at the same place, compact."""
    try:
        v = np.asarray(series.voxels)
        if v.shape[0] < 10:
            return False
        mip = v.max(axis=0)
        top = mip.max()
        if not top > 0 or np.count_nonzero(mip > 0.5 * top) * series.spacing[1] \
                * series.spacing[2] > 150.0:
            return False
        idx = np.array([np.unravel_index(int(np.argmax(s)), s.shape) for s in v[::3]])
        spread = np.ptp(idx, axis=0) * np.array(series.spacing[1:])
        return bool(np.all(spread <= 6.0))
    except Exception:
        return False


def _frame_start(s: Series) -> Any:
    pet = s.facts.pet
    return (pet.acquisition_start or pet.series_datetime) if pet else s.facts.acquired_at


@register
class CorrectionsAccuracy:
    """NEMA NU 2-2018: accuracy of the count-loss and randoms corrections."""

    id: ClassVar[str] = "pet.nema_nu2_2018.corrections_accuracy"
    modality: ClassVar[str] = "PT"
    standard: ClassVar[str] = (
        "NEMA NU 2-2018: accuracy of the corrections for count losses and randoms (see "
        "docs/standards/nema-nu2-2018.md#accuracy-of-count-loss-and-randoms-corrections)")
    title: ClassVar[str] = "PET accuracy of count-loss and randoms corrections (frames)"

    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("n_low", "number of lowest-activity frames from which the true rate is "
                  "extrapolated", "", 3),
        Parameter("roi_diameter_mm", "diameter of the circular ROI centred on the phantom "
                  "in each slice", "mm", 180.0),
        Parameter("volume_ml", "phantom volume, for the activity-concentration axis", "mL",
                  "22 650 (the 203 mm × 700 mm NEMA scatter phantom)"),
        Parameter("phantom_centre_mm", "x,y of the phantom centre in patient coordinates",
                  "mm", "0,0"),
        Parameter("peak_necr_kbq_ml", "activity concentration of the peak NECR (from the "
                  "count-rate test): the maximum error is taken up to it", "kBq/mL",
                  "every frame is used, with a warning"),
    )

    def detect(self, series: Series) -> float:
        return 0.0  # needs all the frames: chosen through group()

    def run(self, series: Series, **params: Any) -> Result:
        raise AnalysisError("the corrections-accuracy test needs every reconstructed frame of "
                            "the count-rate acquisition together")

    def group(self, series: Sequence[Series]) -> list[tuple[Series, ...]]:
        by_study: dict[str, list[Series]] = {}
        for s in series:
            if s.facts.modality == "PT" and s.facts.study_instance_uid and _is_line_phantom(s):
                by_study.setdefault(s.facts.study_instance_uid, []).append(s)
        return [tuple(sorted(g, key=lambda s: str(_frame_start(s))))
                for g in by_study.values() if len(g) >= 5]

    def run_group(self, group: tuple[Series, ...], **params: Any) -> list[Result]:
        n_low = int(params.get("n_low", 3))
        roi_d = float(params.get("roi_diameter_mm", ROI_DIAMETER_MM))
        volume = float(params.get("volume_ml", NEMA_PHANTOM_ML))
        cx, cy = (float(v) for v in str(params.get("phantom_centre_mm", "0,0")).split(","))
        peak = params.get("peak_necr_kbq_ml")
        frames = sorted(group, key=lambda s: _frame_start(s))
        if len(frames) < n_low + 2:
            raise AnalysisError(f"{len(frames)} frames; at least {n_low + 2} are needed")
        first = frames[0]
        result = result_for(self, first)
        t0 = _frame_start(first)
        values, concs, z_ref = [], [], None
        for s in frames:
            pet = s.facts.pet
            if pet is None or pet.half_life_s is None or _frame_start(s) is None:
                raise MissingTagError("frame lacks the half-life (0018,1075) or acquisition "
                                      "time needed to refer frames to one time", s.uid)
            lam = math.log(2.0) / pet.half_life_s
            start = _frame_start(s)
            dt_s = (start - t0).total_seconds()
            dur = pet.frame_duration_s or 0.0
            mode = (pet.decay_correction or "NONE").upper()
            if mode == "START":
                factor = math.exp(lam * dt_s)
            elif mode == "ADMIN":
                if pet.injection_datetime is None:
                    raise MissingTagError("decay correction ADMIN but no injection time "
                                          "(0018,1072)", s.uid)
                factor = math.exp(-lam * (t0 - pet.injection_datetime).total_seconds())
            else:
                x = lam * dur
                factor = math.exp(lam * dt_s) * (x / (1 - math.exp(-x)) if x > 0 else 1.0)
            v = np.asarray(s.voxels, dtype=float)
            nz, ny, nx = v.shape
            xyz = s.index_to_patient(np.array([[0, j, i] for j in (0, ny - 1)
                                               for i in (0, nx - 1)], dtype=float))
            xs = np.linspace(xyz[0, 0], xyz[1, 0], nx)
            ys = np.linspace(xyz[0, 1], xyz[2, 1], ny)
            mask = (xs[None, :] - cx) ** 2 + (ys[:, None] - cy) ** 2 <= (roi_d / 2) ** 2
            voxel_ml = float(np.prod(s.spacing)) / 1000.0
            values.append(v[:, mask].sum(axis=1) * voxel_ml * factor)
            zs = s.index_to_patient(np.c_[np.arange(nz), np.zeros(nz), np.zeros(nz)])[:, 2]
            if z_ref is None:
                z_ref = zs
            elif len(zs) != len(z_ref) or not np.allclose(zs, z_ref, atol=0.1):
                raise AnalysisError("the frames do not share one slice geometry", s.uid)
            if pet.injected_activity_bq and pet.injection_datetime is not None:
                t_mid = (start - pet.injection_datetime).total_seconds() + dur / 2
                concs.append(pet.injected_activity_bq * math.exp(-lam * t_mid) / volume / 1000)
            else:
                concs.append(float("nan"))
        c = np.array(values)  # (frames, slices)
        conc = np.array(concs)
        if np.all(np.isnan(conc)):
            raise MissingTagError("no injected activity (0018,1074) and time: the frames' "
                                  "activity concentrations are unknown", first.uid)
        low = np.argsort(conc)[:n_low]
        ref = c[low].mean(axis=0)
        used = ref >= 0.05 * ref.max()
        dr = 100.0 * (c[:, used] / ref[used][None, :] - 1.0)
        per_frame = np.abs(dr).max(axis=1)
        for j in range(len(frames)):
            lab = {"frame": j + 1, "activity_kbq_ml": round(float(conc[j]), 3)}
            result.add("rate_error_percent", float(per_frame[j]), "%", labels=lab)
        if peak is None:
            include = np.ones(len(frames), dtype=bool)
            result.warnings.append("peak_necr_kbq_ml not given: the maximum is over every "
                                   "frame, not only those up to the peak-NECR activity "
                                   "(give it from the count-rate result)")
        else:
            include = conc <= float(peak) + 1e-9
            if not include.any():
                raise AnalysisError(f"no frame at or below the peak-NECR activity {peak} kBq/mL")
        result.add("max_rate_error_percent", float(per_frame[include].max()), "%")
        result.parameters = {"roi_diameter_mm": roi_d, "n_low": n_low, "volume_ml": volume,
                             "phantom_centre_mm": [cx, cy], "peak_necr_kbq_ml": peak,
                             "frames": len(frames), "slices_used": int(used.sum()),
                             "low_activity_frames": [int(i) + 1 for i in low],
                             # where each phantom fact came from (no silent defaults)
                             "volume_ml_source": "given" if "volume_ml" in params else
                             "the NEMA NU 2-2018 scatter phantom's volume (203 mm x 700 mm)",
                             "phantom_centre_mm_source": "given" if "phantom_centre_mm" in params
                             else "the scanner axis, where NEMA NU 2-2018 places the phantom"}
        result.evidence = {"conc": conc.tolist(), "dr": dr.tolist(),
                           "z_mm": [] if z_ref is None else np.asarray(z_ref)[used].tolist()}
        return [result]

    def figures(self, result: Result) -> list[Any]:
        """Rate error per slice for every frame, against axial position."""
        import plotly.graph_objects as go

        ev = result.evidence
        if not ev:
            return []
        fig = go.Figure()
        for j, row in enumerate(ev["dr"]):
            fig.add_trace(go.Scatter(x=ev["z_mm"], y=row, mode="lines",
                                     name=f"{ev['conc'][j]:.1f} kBq/mL"))
        fig.update_layout(title="Residual rate error per slice (NEMA dR_ij)",
                          xaxis_title="axial position (mm)", yaxis_title="dR (%)")
        return [fig]
