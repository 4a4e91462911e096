"""PET system sensitivity from a line source in aluminium sleeves, NEMA NU 2-2018 section 5.

Procedure (STANDARDS.md A.2; details marked there [U]/[P] are stated as choices):

1. **Frames.** One sinogram frame per sleeve configuration (frame attribute
   ``sleeves``: how many of the nested sleeves surround the line), at each source
   position (``source_x_mm``/``source_y_mm``; NEMA: the centre and 10 cm).
   Frames marked ``role = background`` (no source) give the intrinsic
   (Lu-176) coincidence rate; ``intrinsic_cps`` overrides it.
2. **Rates.** Per frame ``R_j = (prompts - delayed) / T - R_int``: the
   delayed-window sinogram removes randoms (NEMA asks for randoms-subtracted
   rates), the intrinsic rate is subtracted for LSO/LYSO systems. Each rate is
   decay-corrected to the time the line's activity was calibrated, with the
   in-frame decay factor ``lambda T / (1 - exp(-lambda T))``.
3. **Attenuation-free extrapolation.** ``R_j = R_0 exp(-2 mu X_j)`` is fitted
   (weighted least squares on ``ln R_j``) where ``X_j`` is the cumulative wall
   thickness of the sleeves present: ``sleeves x sleeve_wall_mm`` (1.25 mm from
   the commonly quoted sleeve diameters, [U]: a frame's ``sleeve_wall_mm``
   attribute or the ``sleeve_wall_mm`` parameter overrides it; per the
   standard X_j is the total aluminium crossed by one photon).
   ``system_sensitivity_cps_per_kbq = R_0 / A_cal`` per source radius, with
   ``aluminium_attenuation_coefficient_per_cm`` = fitted mu as a check (about
   0.22 /cm at 511 keV).
4. **Axial profile.** Per SSRB plane, the rate of the thinnest-sleeve frame,
   scaled so that the planes add up to the system sensitivity (NEMA's
   ``S_i = R_1,i / R_1 x S_tot``), kept as data (``evidence``) and drawn.

The result also records the line length, axial FOV, MRD and acceptance angle
(long-AFOV conventions, STANDARDS.md A.8): a 700 mm line in a 2 m scanner gives
a different number from a 2 m line.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from scanbench.analysis.base import Parameter
from scanbench.analysis.registry import register
from scanbench.errors import AnalysisError, InputError
from scanbench.rawdata import Frame, RawDataset
from scanbench.rawdata.analysis import RawOnly, common_parameters, float_param
from scanbench.types import Result

DEFAULT_SLEEVE_WALL_MM = 1.25
_NO_INTRINSIC = ("intrinsic (Lu-176) true rate neither measured (no background frame in the "
                 "file) nor given, so none is subtracted; give --param intrinsic_cps=... "
                 "(0 for a scanner whose crystals hold no radioactivity, e.g. BGO)")


def decay_to_reference(rate: float, frame: Frame, dataset: RawDataset, t_ref_s: float) -> float:
    """A frame's mean count rate referred to the activity at ``t_ref_s`` (s from start)."""
    if not dataset.half_life_s:
        return rate
    lam = math.log(2.0) / dataset.half_life_s
    x = lam * frame.duration_s
    in_frame = x / (1.0 - math.exp(-x)) if x > 1e-12 else 1.0
    return rate * math.exp(lam * (frame.start_s - t_ref_s)) * in_frame


def intrinsic_rates(dataset: RawDataset, params: dict[str, Any]) -> tuple[float, np.ndarray | None,
                                                                          str]:
    """(total intrinsic cps, per-plane cps or None, how it was obtained)."""
    given = float_param(params, "intrinsic_cps", None)
    if given is not None:
        return given, None, "parameter intrinsic_cps"
    bgs = [f for f in dataset.frames if f.attrs.get("role") == "background"]
    if not bgs:
        return 0.0, None, "none (no background frame and no intrinsic_cps)"
    per_plane = None
    total_t = 0.0
    for f in bgs:
        net = _net(dataset, f)
        planes = net.sum(axis=(1, 2), dtype=np.float64)
        per_plane = planes if per_plane is None else per_plane + planes
        total_t += f.duration_s
    assert per_plane is not None
    return float(per_plane.sum() / total_t), per_plane / total_t, \
        f"background frame(s) {', '.join(str(f.index) for f in bgs)}"


def _net(dataset: RawDataset, frame: Frame) -> np.ndarray:
    prompts = dataset.prompts(frame.index)
    delayed = dataset.delayed(frame.index)
    if delayed is None:
        raise InputError(f"frame {frame.index}: no delayed sinogram, but NEMA NU 2-2018 needs "
                         "randoms-subtracted rates; export the delayed (randoms) sinograms "
                         "with the prompts", dataset.where)
    return prompts.astype(np.float64) - delayed


@register
class Sensitivity(RawOnly):
    """NEMA NU 2-2018 section 5: total system sensitivity and its axial profile."""

    id: ClassVar[str] = "pet.nema_nu2_2018.sensitivity"
    modality: ClassVar[str] = "PT"
    standard: ClassVar[str] = (
        "NEMA NU 2-2018 section 5: sensitivity (see docs/standards/nema-nu2-2018.md#sensitivity)")
    title: ClassVar[str] = "PET system sensitivity (line source in 5 sleeves)"

    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("activity_bq", "calibrated activity of the line source at the file's "
                  "reference time", "Bq", "from the file (/phantom activity_bq); required "
                  "if the file has none"),
        Parameter("sleeve_wall_mm", "wall thickness of one aluminium sleeve", "mm",
                  "from each frame's sleeve_wall_mm attribute, else 1.25 with the "
                  "aluminium coefficient not judged"),
        Parameter("intrinsic_cps", "intrinsic (Lu-176) true-coincidence rate to subtract",
                  "cps", "measured from a background frame if the file has one, else 0 "
                  "with the sensitivities not judged"),
    )

    def detect_raw(self, dataset: RawDataset) -> float:
        if dataset.kind != "sinogram":
            return 0.0
        if dataset.purpose == "sensitivity":
            return 0.95
        sleeves = {f.attrs.get("sleeves") for f in dataset.frames} - {None}
        return 0.8 if len(sleeves) >= 2 else 0.0

    def run_raw(self, dataset: RawDataset, **params: Any) -> Result:
        wall_param = float_param(params, "sleeve_wall_mm", None)
        activity = float_param(params, "activity_bq", None)
        if activity is not None:
            dataset.phantom["activity_bq"] = activity
            dataset.phantom.setdefault("activity_time_s", 0.0)
        if dataset.phantom.get("activity_bq") is None:
            raise AnalysisError("the line source's calibrated activity is not in the file "
                                "(/phantom activity_bq); give --param activity_bq=...",
                                dataset.where)
        a_cal_kbq = float(dataset.phantom["activity_bq"]) / 1000.0
        t_ref = float(dataset.phantom.get("activity_time_s", 0.0))
        result = Result(analysis=self.id, standard=self.standard, series_instance_uid=None,
                        device=dataset.device, acquired_at=dataset.acquired_at,
                        source=dataset.where)
        r_int, int_planes, int_how = intrinsic_rates(dataset, params)
        if r_int == 0.0 and "none" in int_how:
            result.warnings.append("intrinsic (Lu-176) rate not subtracted: no background frame "
                                   "in the file and no intrinsic_cps parameter; for LSO/LYSO "
                                   "systems this overstates the sensitivity")
        source_frames = [f for f in dataset.frames if f.attrs.get("role") != "background"]
        if any(f.attrs.get("sleeves") is None for f in source_frames):
            raise InputError("a source frame lacks the 'sleeves' attribute (how many sleeves "
                             "were on the line)", dataset.where)
        groups: dict[tuple[float, float], list[Frame]] = {}
        for f in source_frames:
            key = (float(f.attrs.get("source_x_mm", 0.0)), float(f.attrs.get("source_y_mm", 0.0)))
            groups.setdefault(key, []).append(f)
        n_planes = dataset.layout.n_planes if dataset.layout else 0
        profiles: list[dict[str, Any]] = []
        loss_frames: list[str] = []
        random_frames: list[str] = []
        for (x, y), frames in sorted(groups.items(), key=lambda kv: math.hypot(*kv[0])):
            radius = round(math.hypot(x, y), 1)
            if len({f.attrs["sleeves"] for f in frames}) < 2:
                raise AnalysisError(f"source at r = {radius} mm: frames with at least two "
                                    "different sleeve counts are needed for the extrapolation",
                                    dataset.where)
            xs, rates, errs, planes = [], [], [], []
            wall_assumed = wall_param is None and any(f.attrs.get("sleeve_wall_mm") is None
                                                      for f in frames)
            for f in frames:
                wall = wall_param if wall_param is not None else \
                    float(f.attrs.get("sleeve_wall_mm", DEFAULT_SLEEVE_WALL_MM))
                net = _net(dataset, f)
                per_plane = net.sum(axis=(1, 2)) / f.duration_s
                if int_planes is not None and len(int_planes) == len(per_plane):
                    per_plane = per_plane - int_planes
                else:
                    per_plane = per_plane - r_int / max(len(per_plane), 1)
                rate = float(per_plane.sum())
                counts = float(dataset.prompts(f.index).sum(dtype=np.float64))
                delayed = dataset.delayed(f.index)
                randoms = float(delayed.sum(dtype=np.float64)) if delayed is not None else 0.0
                if f.dead_time_fraction is not None and f.dead_time_fraction > 0.01:
                    loss_frames.append(f"{f.index} ({100 * f.dead_time_fraction:.1f} %)")
                if randoms > 0.05 * max(counts - randoms, 1.0):
                    share = 100 * randoms / max(counts - randoms, 1.0)
                    random_frames.append(f"{f.index} ({share:.0f} %)")
                if not rate > 0:
                    raise AnalysisError(f"frame {f.index}: no net counts after randoms and "
                                        "intrinsic subtraction", dataset.where)
                corr = decay_to_reference(1.0, f, dataset, t_ref)
                xs.append(int(f.attrs["sleeves"]) * wall)
                rates.append(rate * corr)
                errs.append(math.sqrt(max(counts, 1.0)) / f.duration_s * corr / (rate * corr))
                planes.append((int(f.attrs["sleeves"]), per_plane * corr))
            X, lnR, w = np.array(xs), np.log(rates), 1.0 / np.array(errs) ** 2
            A = np.vstack([np.ones_like(X), X]).T
            cov = np.linalg.inv(A.T @ (A * w[:, None]))
            coef = cov @ (A.T @ (w * lnR))
            r0 = float(np.exp(coef[0]))
            mu_per_mm = float(-coef[1] / 2.0)
            resid = lnR - A @ coef
            dof = max(len(X) - 2, 1)
            scale = max(float(np.sum(w * resid**2) / dof), 1.0)
            s_tot = r0 / a_cal_kbq
            s_err = s_tot * math.sqrt(cov[0, 0] * scale)
            labels = {"radius_mm": radius}
            sens = result.add("system_sensitivity_cps_per_kbq", s_tot, "cps/kBq",
                              labels=dict(labels), uncertainty=s_err)
            mu = result.add("aluminium_attenuation_coefficient_per_cm", mu_per_mm * 10.0, "1/cm",
                            labels=dict(labels),
                            uncertainty=math.sqrt(cov[1, 1] * scale) / 2.0 * 10.0)
            # no silent default (issue 11): a number resting on an assumed value is not judged
            if wall_assumed:
                mu.not_judged(f"sleeve_wall_mm neither given nor in the file: the coefficient "
                              f"assumes {DEFAULT_SLEEVE_WALL_MM} mm aluminium walls; give "
                              "--param sleeve_wall_mm=... (the sensitivity, extrapolated to "
                              "no wall, does not depend on it)")
            if "none" in int_how:
                sens.not_judged(_NO_INTRINSIC)
            thinnest = min(planes, key=lambda p: p[0])[1]
            profile = thinnest / thinnest.sum() * s_tot
            peak = result.add("peak_slice_sensitivity_cps_per_kbq", float(profile.max()),
                              "cps/kBq", labels=dict(labels))
            if "none" in int_how:
                peak.not_judged(_NO_INTRINSIC)
            profiles.append({"radius_mm": radius, "sleeve_mm": xs, "rates_cps": rates,
                             "r0_cps": r0, "mu_per_mm": mu_per_mm,
                             "profile_cps_per_kbq": profile.tolist()})
        if loss_frames:
            result.warnings.append(
                "count losses above 1 % (the scanner's dead-time fraction) in frame(s) "
                f"{', '.join(loss_frames)}: NEMA asks for a low activity so that losses are "
                "under 1 % (see docs/standards/nema-nu2-2018.md#sensitivity); the uncorrected "
                "losses lower the sensitivity")
        if random_frames:
            result.warnings.append(
                f"randoms above 5 % of trues in frame(s) {', '.join(random_frames)} (the NEMA "
                "low-activity condition as commonly quoted; see "
                "docs/standards/nema-nu2-2018.md#sensitivity); they are subtracted, but the "
                "activity is higher than intended")
        plane_z = dataset.layout.plane_z_mm.tolist() if dataset.layout else list(range(n_planes))
        result.parameters = {
            **common_parameters(dataset),
            "activity_bq": a_cal_kbq * 1000.0, "activity_time_s": t_ref,
            "sleeve_wall_mm": wall_param if wall_param is not None else
            "from the frames (default 1.25 mm, the commonly quoted wall, not confirmed in the NEMA "
            "text)",
            "intrinsic_cps": round(r_int, 3), "intrinsic_from": int_how,
            "half_life_s": dataset.half_life_s,
            "axial_profile": {"plane_z_mm": [round(z, 3) for z in plane_z],
                              **{f"r{p['radius_mm']:g}_cps_per_kbq":
                                 [round(v, 5) for v in p["profile_cps_per_kbq"]]
                                 for p in profiles}},
        }
        result.evidence = {"profiles": profiles, "plane_z_mm": plane_z}
        return result

    def figures(self, result: Result) -> list[Any]:
        """The attenuation fit per radius and the axial sensitivity profile."""
        import plotly.graph_objects as go

        ev = result.evidence
        if not ev:
            return []
        fit = go.Figure()
        prof = go.Figure()
        for p in ev["profiles"]:
            xs = np.linspace(0, max(p["sleeve_mm"]), 50)
            fit.add_trace(go.Scatter(x=p["sleeve_mm"], y=p["rates_cps"], mode="markers",
                                     name=f"r = {p['radius_mm']:g} mm, measured"))
            fit.add_trace(go.Scatter(x=xs, y=p["r0_cps"] * np.exp(-2 * p["mu_per_mm"] * xs),
                                     mode="lines", name=f"r = {p['radius_mm']:g} mm, fit"))
            prof.add_trace(go.Scatter(x=ev["plane_z_mm"], y=p["profile_cps_per_kbq"],
                                      mode="lines", name=f"r = {p['radius_mm']:g} mm"))
        fit.update_layout(title="Count rate against sleeve wall (decay-corrected), "
                                "extrapolated to no attenuation",
                          xaxis_title="cumulative sleeve wall X (mm)",
                          yaxis_title="count rate (cps)", yaxis_type="log")
        prof.update_layout(title="Axial sensitivity profile (thinnest sleeve, SSRB planes)",
                           xaxis_title="axial position (mm)", yaxis_title="cps/kBq per plane")
        return [fit, prof]
