"""Clinical CT noise trended per device and protocol, normalised for patient size, with
a drift rule (issue 16 §3).

Method
------
Every stored ``ct.clinical_global_noise`` result of a device (one per patient series,
:mod:`scanbench.service.clinical_iq`) is an *exam*: its global noise σ (the Duke tissue
mode, :data:`METHOD`), the patient's water-equivalent diameter D_w and the CTDIvol of
the header, under its protocol (Protocol Name, else Series Description).

*Size model.* Quantum noise grows as the quanta through the patient fall,
exp(−μ D_w) (Beer–Lambert), and falls as 1/√dose, so per device and protocol

    ln σ = a + b · D_w − ½ · ln CTDIvol

(AAPM Report 220 for D_w; the 1/√dose law is the one the Duke method's authors verified,
Christianson et al., AJR 2015;205:W93–W99). ``a`` and ``b`` are fitted by least squares
on the device's own **baseline**: the first :data:`BASELINE_EXAMS` measured exams of the
protocol in each baseline segment (a segment starts at the device's first exam and at
every lifecycle event marked ``new_baseline``, as for the phantom QC trends). The
coefficient of ln CTDIvol is fixed by physics: tube current modulation ties CTDIvol to
patient size, so a free coefficient would trade off against ``b`` on a 30-exam
baseline. If the baseline's D_w spread is under :data:`MIN_DW_SPREAD_MM`, ``b`` is
not fitted but set to μ/2 = 0.0095 /mm (water near 60 keV, the virtual patients'
value).

*Residual.* For every later exam of the segment, r = ln σ − (a + b D_w − ½ ln CTDIvol)
(≈ the fractional excess noise), standardised as a prediction residual:
z = r / (s · √(1 + h) · t₍ₙ₋₂₎(1 − α/2) / z(1 − α/2)), with s the residual SD of the
baseline fit (n − 2 degrees of freedom), h the exam's leverage under the fit and
α = 0.0027 (Student prediction interval for a new observation of a regression; Hahn &
Meeker, *Statistical Intervals*, 1991, section 4.6; the same widening the phantom trends
use, :func:`scanbench.evaluation.trend.prediction_factor`).

*Drift rule.* The standardised residuals of each segment run through the rules of the
automatic phantom alerts (:data:`scanbench.evaluation.alerts.SETTINGS`: Westgard 1-3s
and the tabular CUSUM k = 0.5, h = 5, Montgomery, *Introduction to Statistical Quality
Control*, chapter 9) with baseline mean 0 and σ 1. A noise increase by a factor f
shifts z by δ = ln f / s_pred; the CUSUM detects it after
:func:`cusum_arl` exams on average (Siegmund's approximation, Montgomery section 9.1.3):
the number stated for each protocol in the API (``expected_exams_to_detect_15pct``).

*PET liver noise* (``pet.clinical_liver_noise``, :data:`PET`) is trended the same way
with its own model: the liver COV of the 3 cm VOI falls as 1/√(counts), the counts grow
with the injected activity per kg times the time per bed (the EANM guideline 2.0's
product, Boellaard et al., Eur J Nucl Med Mol Imaging 2015;42:328–354) and fall with
the patient's attenuation, so ln COV = a + b · weight − ½ · ln(MBq·min/kg); b is fitted
when the baseline's weights span at least 10 kg, else 0 (no physics prior is claimed).

Alerts are stored as the phantom trend alerts are (``m.Alert``, level ``trend``),
analysis the kind's, name :attr:`Kind.residual`, labels protocol and method; they close
when the residuals are back in control (|z| ≤ 2 and the rule no longer holding) or at a
new baseline, as the phantom ones do.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from scanbench.evaluation.trend import (
    BaselineStart,
    TrendPoint,
    TrendReport,
    TrendSettings,
    check_trend,
)
from scanbench.store import models as m

BASELINE_EXAMS = 30
_ALPHA = 0.0027
_RULES = ("rules Westgard 1-3s and tabular CUSUM k = 0.5σ, h = 5σ (Montgomery, "
          "Introduction to Statistical Quality Control, chapter 9)")


@dataclass(frozen=True)
class Quantity:
    """A measurement the model reads: its stored name, how it is said, its unit."""

    name: str
    label: str
    unit: str


@dataclass(frozen=True)
class Kind:
    """One clinical image-quality measurement trended with a size model:
    ln noise = a + b · size − ½ · ln dose (module doc)."""

    key: str  # "ct" / "pet": the API's name for it
    analysis: str
    method: str  # the method label of the noise value trended
    residual: str  # the alerts' measurement name
    noise: Quantity
    size: Quantity
    dose: Quantity
    size_reference: float  # the size at which devices are compared
    min_size_spread: float  # below it, b is not fitted but ``prior_b``
    prior_b: float
    noise_labels: tuple[tuple[str, str], ...] = ()  # labels the noise value must have
    source: str = ""


CT = Kind("ct", "ct.clinical_global_noise", "Duke tissue mode", "global_noise_size_residual",
          Quantity("global_noise_hu", "global noise", "HU"),
          Quantity("water_equivalent_diameter_mm", "water-equivalent diameter D_w", "mm"),
          Quantity("ctdivol_mgy", "CTDIvol", "mGy"), 300.0, 20.0, 0.0095,
          (("method", "Duke tissue mode"),),
          "size model ln σ = a + b·D_w − ½·ln CTDIvol fitted on the device's baseline exams "
          "(Christianson et al., AJR 2015;205:W93-W99; AAPM Report 220); " + _RULES)
PET = Kind("pet", "pet.clinical_liver_noise", "liver COV, 3 cm VOI (PERCIST)",
           "liver_cov_size_residual",
           Quantity("liver_cov_percent", "liver COV", "%"),
           Quantity("patient_weight_kg", "patient weight", "kg"),
           Quantity("activity_time_per_kg_mbq_min_kg", "activity × time per bed per kg",
                    "MBq·min/kg"), 75.0, 10.0, 0.0, (),
           "model ln COV = a + b·weight − ½·ln(MBq·min/kg) fitted on the device's baseline "
           "exams (PERCIST, Wahl et al., J Nucl Med 2009;50:122S-150S; EANM guideline 2.0, "
           "Boellaard et al., Eur J Nucl Med Mol Imaging 2015;42:328-354); " + _RULES)
KINDS: tuple[Kind, ...] = (CT, PET)
#: the CT names, as before PET was trended
ANALYSIS, METHOD, RESIDUAL, SOURCE = CT.analysis, CT.method, CT.residual, CT.source


def settings() -> TrendSettings:
    """The rules of the automatic phantom alerts, on standardised residuals."""
    from scanbench.evaluation.alerts import SETTINGS

    return TrendSettings(rules=SETTINGS.rules, cusum_k=SETTINGS.cusum_k,
                         cusum_h=SETTINGS.cusum_h)


@dataclass(frozen=True)
class Exam:
    """One measured patient series: its noise, size and dose in the kind's units (CT: σ
    in HU, D_w in mm, CTDIvol in mGy). ``refused``: why one of them is missing (then it
    is not trended)."""

    result_id: int
    series_uid: str | None
    time: dt.datetime
    protocol: str
    noise: float
    size: float
    dose: float
    kvp: float | None = None
    kernel: str | None = None
    refused: str | None = None

    @property
    def usable(self) -> bool:
        return self.refused is None


@dataclass(frozen=True)
class SizeModel:
    """ln noise = a + b·size − ½·ln dose; ``s`` the residual SD (ln units ≈ fraction)."""

    a: float
    b: float
    s: float
    n: int
    b_fitted: bool
    size_range: tuple[float, float]
    cov: tuple[tuple[float, ...], ...]  # (XᵀX)⁻¹ of the fitted columns

    def expected(self, size: float, dose: float) -> float:
        return math.exp(self.a + self.b * size - 0.5 * math.log(dose))

    def leverage(self, size: float) -> float:
        x = np.array([1.0, size] if self.b_fitted else [1.0])
        return float(x @ np.array(self.cov) @ x)

    def prediction_sd(self, size: float) -> float:
        """SD of a new exam's residual (ln units), widened for n (module doc)."""
        from scipy.special import ndtri, stdtrit

        df = self.n - (2 if self.b_fitted else 1)
        t = float(stdtrit(df, 1.0 - _ALPHA / 2) / ndtri(1.0 - _ALPHA / 2))
        return self.s * math.sqrt(1.0 + self.leverage(size)) * t


def fit_size_model(exams: Sequence[Exam], kind: Kind = CT) -> SizeModel | None:
    """Least-squares fit of the size model on ``exams`` (module doc); None with fewer
    than 3 exams or a zero residual SD."""
    dw = np.array([e.size for e in exams])
    y = np.log([e.noise for e in exams]) + 0.5 * np.log([e.dose for e in exams])
    n = len(exams)
    if n < 3:
        return None
    fitted = float(np.ptp(dw)) >= kind.min_size_spread
    if fitted:
        x = np.column_stack([np.ones(n), dw])
        coef, *_ = np.linalg.lstsq(x, y, rcond=None)
        a, b = float(coef[0]), float(coef[1])
        df = n - 2
    else:
        x = np.ones((n, 1))
        b = kind.prior_b
        a = float(np.mean(y - b * dw))
        df = n - 1
    resid = y - (a + b * dw)
    s = float(np.sqrt(np.sum(resid ** 2) / df))
    if not (math.isfinite(s) and s > 0):
        return None
    cov = np.linalg.inv(x.T @ x)
    return SizeModel(a, b, s, n, fitted, (float(dw.min()), float(dw.max())),
                     tuple(tuple(float(v) for v in row) for row in cov))


def cusum_arl(delta: float, k: float = 0.5, h: float = 5.0) -> float:
    """Average run length of a one-sided tabular CUSUM for a shift of ``delta`` σ:
    Siegmund's approximation ARL = (e^(−2Δb) + 2Δb − 1) / (2Δ²), Δ = δ − k,
    b = h + 1.166 (Montgomery, *Introduction to Statistical Quality Control*, 6th ed.,
    section 9.1.3, eq. 9.15); Δ = 0 gives b²."""
    d = delta - k
    b = h + 1.166
    if abs(d) < 1e-9:
        return b * b
    return (math.exp(-2 * d * b) + 2 * d * b - 1) / (2 * d * d)


@dataclass
class ExamPoint:
    """An exam as charted: expected σ under the segment's model, residual and z (None
    for the baseline exams and for refused exams)."""

    exam: Exam
    expected: float | None = None
    residual: float | None = None
    z: float | None = None
    baseline: bool = False
    segment: int = -1


@dataclass
class Segment:
    """One baseline segment of one protocol: its model, from ``start`` on."""

    start: dt.datetime
    reason: str
    model: SizeModel | None
    baseline_exams: int
    note: str = ""


@dataclass
class ProtocolTrend:
    """One protocol of one device: its exams, segments, the rules' report."""

    device_id: int
    protocol: str
    points: list[ExamPoint]
    segments: list[Segment]
    reports: list[TrendReport]
    alerts: list[_Found] = field(default_factory=list)
    kind: Kind = CT

    def summary(self) -> dict[str, Any]:
        """The protocol as the API and the report give it (units in the names)."""
        seg = self.segments[-1] if self.segments else None
        model = seg.model if seg else None
        usable = [p for p in self.points if p.exam.usable]
        judged = [p for p in usable if p.z is not None]
        out: dict[str, Any] = {
            "protocol": self.protocol, "exams": len(self.points), "measured": len(usable),
            "refused": len(self.points) - len(usable), "judged": len(judged),
            "baseline_exams_needed": BASELINE_EXAMS,
            "first": self.points[0].exam.time.isoformat() if self.points else None,
            "last": self.points[-1].exam.time.isoformat() if self.points else None,
            "median_noise": _median([p.exam.noise for p in usable]),
            "median_size": _median([p.exam.size for p in usable]),
            "median_dose": _median([p.exam.dose for p in usable]),
            "model": None, "open_alerts": 0, "method": self.kind.method,
            **_names(self.kind),
        }
        if model is not None:
            ref_dose = out["median_dose"]
            ref = self.kind.size_reference
            sd_ref = model.prediction_sd(ref)
            out["model"] = {
                "a": model.a, "b": model.b, "b_fitted": model.b_fitted,
                "residual_sd_ln": model.s, "baseline_exams": model.n,
                "size_range": list(model.size_range),
                "baseline_from": seg.start.isoformat() if seg else None,
                "size_reference": ref,
                "noise_at_reference": model.expected(ref, ref_dose) if ref_dose else None,
                "prediction_sd_ln_at_reference": sd_ref,
                "shift_15pct_in_sd": math.log(1.15) / sd_ref,
                "expected_exams_to_detect_15pct": cusum_arl(math.log(1.15) / sd_ref),
                "in_control_arl_exams": 1.0 / (2.0 / cusum_arl(0.0)),
            }
        return out


def _names(kind: Kind) -> dict[str, Any]:
    """How the API names the kind's quantities (stored names, labels, units)."""
    return {"kind": kind.key, "analysis": kind.analysis,
            "quantities": {q: {"name": x.name, "label": x.label, "unit": x.unit}
                           for q, x in (("noise", kind.noise), ("size", kind.size),
                                        ("dose", kind.dose))}}


def _median(values: Sequence[float]) -> float | None:
    v = [x for x in values if math.isfinite(x)]
    return float(np.median(v)) if v else None


# --------------------------------------------------------------------------- reading

def load_exams(session: Session, device_id: int, kind: Kind = CT) -> list[Exam]:
    """Every current (not superseded) result of the kind's analysis on the device with
    an acquisition time, oldest first."""
    later = aliased(m.Result)
    rows = session.execute(
        select(m.Result.id, m.Result.series_uid, m.Result.acquired_at, m.Result.parameters,
               m.Series.description)
        .outerjoin(m.Series, m.Series.id == m.Result.series_id)
        .where(m.Result.device_id == device_id, m.Result.analysis == kind.analysis,
               m.Result.acquired_at.is_not(None),
               ~select(later.id).where(later.supersedes_id == m.Result.id).exists())
        .order_by(m.Result.acquired_at, m.Result.id)).all()
    if not rows:
        return []
    ids = [r[0] for r in rows]
    meas: dict[int, dict[str, tuple[float, str, str | None]]] = {i: {} for i in ids}
    for rid, name, labels, value, status, note in session.execute(
            select(m.Measurement.result_id, m.Measurement.name, m.Measurement.labels,
                   m.Measurement.value, m.Measurement.status, m.Measurement.note)
            .where(m.Measurement.result_id.in_(ids), m.Measurement.name.in_(
                [kind.noise.name, kind.size.name, kind.dose.name, "kvp"]))):
        if name == kind.noise.name and any((labels or {}).get(k) != v
                                           for k, v in kind.noise_labels):
            continue
        v = float(value) if value is not None else math.nan
        meas[rid][name] = (v, status, note)
    out = []
    for rid, uid, when, params, desc in rows:
        p = dict(params or {})
        protocol = str(p.get("protocol") or " ".join(str(desc or "").split())
                       or "(no protocol name)")
        got = meas[rid]
        vals, why = {}, None
        for name, label in ((q.name, q.label) for q in (kind.noise, kind.size, kind.dose)):
            v, status, note = got.get(name, (math.nan, "missing", None))
            vals[name] = v
            if why is None and (status in ("refused", "not_judged", "missing")
                                or not math.isfinite(v) or v <= 0):
                why = f"{label}: {note or status}"
        kvp = got.get("kvp", (math.nan, "", None))[0]
        out.append(Exam(rid, uid, when, protocol, vals[kind.noise.name],
                        vals[kind.size.name], vals[kind.dose.name],
                        kvp if math.isfinite(kvp) else None,
                        p.get("reconstruction_kernel"), why))
    return out


def protocol_trends(exams: Sequence[Exam], restarts: Sequence[BaselineStart] = (),
                    device_id: int = 0, kind: Kind = CT) -> list[ProtocolTrend]:
    """The size model, residuals and rules of every protocol of one device's exams
    (oldest first); ``restarts`` are the device's new baselines (module doc)."""
    by_protocol: dict[str, list[Exam]] = {}
    for e in exams:
        by_protocol.setdefault(e.protocol, []).append(e)
    bounds: list[tuple[dt.datetime | None, str]] = [(None, "")] + [
        (r.time, r.reason) for r in restarts if r.time is not None]
    return [_protocol_trend(device_id, protocol, items, bounds, kind)
            for protocol, items in sorted(by_protocol.items())]


def _protocol_trend(device_id: int, protocol: str, items: list[Exam],
                    bounds: list[tuple[dt.datetime | None, str]], kind: Kind
                    ) -> ProtocolTrend:
    s = settings()
    trend = ProtocolTrend(device_id, protocol, [ExamPoint(e) for e in items], [], [],
                          kind=kind)
    for j, (t0, reason) in enumerate(bounds):
        t1 = bounds[j + 1][0] if j + 1 < len(bounds) else None
        seg_pts = [p for p in trend.points if (t0 is None or p.exam.time >= t0)
                   and (t1 is None or p.exam.time < t1)]
        if not seg_pts:
            continue
        usable = [p for p in seg_pts if p.exam.usable]
        base = usable[:BASELINE_EXAMS]
        model = fit_size_model([p.exam for p in base], kind) \
            if len(base) == BASELINE_EXAMS else None
        seg = Segment(t0 or seg_pts[0].exam.time, reason, model, len(base))
        for p in seg_pts:
            p.segment = len(trend.segments)
        trend.segments.append(seg)
        for p in base:
            p.baseline = True
        if model is None:
            seg.note = (f"{len(base)} of the {BASELINE_EXAMS} measured exams its baseline "
                        "needs: not judged yet")
            continue
        judged = usable[BASELINE_EXAMS:]
        for p in usable:
            p.expected = model.expected(p.exam.size, p.exam.dose)
            p.residual = math.log(p.exam.noise / p.expected)
        for p in judged:
            p.z = float(p.residual or 0.0) / model.prediction_sd(p.exam.size)
        name = (f"d{device_id}|{kind.analysis}|{kind.residual}|{protocol}|{kind.method}|"
                f"baseline {seg.start.isoformat()}")
        report = check_trend(name, "σ", [TrendPoint(p.exam.time, float(p.z or 0.0))
                                        for p in judged],
                             [BaselineStart(None, mean=0.0, sigma=1.0)], s)
        trend.reports.append(report)
        for a in report.alerts:
            p = judged[a.index]
            end = judged[a.end_index].exam if a.end_index is not None \
                and a.end_index < len(judged) else None
            restart = None
            if end is None and t1 is not None:  # the next baseline ends it
                end = next((q.exam for q in trend.points if q.exam.time >= t1), None)
                restart = (t1, bounds[j + 1][1])
            key = _alert_key(device_id, protocol, seg.start, a.rule, a.direction,
                             judged[a.first_index].exam.time, kind)
            message = (f"clinical {kind.key.upper()} noise, protocol {protocol!r}: "
                       f"{kind.method} {p.exam.noise:.3g} {kind.noise.unit} where the size model "
                       f"of the baseline expects {p.expected:.3g} {kind.noise.unit} "
                       f"({kind.size.label} {p.exam.size:.0f} {kind.size.unit}, "
                       f"{kind.dose.label} {p.exam.dose:.3g} {kind.dose.unit}; "
                       f"{100 * (math.exp(p.residual or 0) - 1):+.0f} %)"
                       f" — on the standardised residuals of its baseline (first "
                       f"{BASELINE_EXAMS} exams from {seg.start.isoformat()}), "
                       f"{a.message.split('; baseline ')[0]}")
            trend.alerts.append(_Found(key, a.rule, a.direction, p, a.statistic, a.limit,
                                       message, end, judged[a.first_index].exam.time,
                                       restart))
    return trend


@dataclass
class _Found:
    """A drift alert as computed from the history (recorded if its key is new)."""

    key: str
    rule: str
    direction: str
    point: ExamPoint
    statistic: float
    threshold: float
    message: str
    end: Exam | None  # the exam that ends it (back in control / new baseline)
    first: dt.datetime  # the first offending exam (a CUSUM: where its excursion began)
    restart: tuple[dt.datetime, str] | None = None  # the new baseline that ends it


def _alert_key(device_id: int, protocol: str, start: dt.datetime, rule: str,
               direction: str, first: dt.datetime, kind: Kind = CT) -> str:
    from scanbench.evaluation.alerts import _key

    # the CT keys as they were before PET was trended (stored alerts keep their keys)
    head = ("clinical-iq",) if kind is CT else ("clinical-iq", kind.key)
    return _key(*head, f"d{device_id}", protocol, kind.method,
                f"baseline {start.isoformat()}", rule, direction, first.isoformat())


def _labels(protocol: str, kind: Kind = CT) -> dict[str, Any]:
    return {"protocol": protocol, "method": kind.method}


def device_trends(session: Session, device_id: int, kind: Kind = CT) -> list[ProtocolTrend]:
    """Every protocol's trend of one device from the store (reads only)."""
    from scanbench.evaluation.alerts import baseline_starts

    return protocol_trends(load_exams(session, device_id, kind),
                           baseline_starts(session, device_id), device_id, kind)


# --------------------------------------------------------------------------- recording

def sync_device(session: Session, device_id: int) -> list[m.Alert]:
    """Record the drift alerts of a device's clinical image quality (every kind) not
    recorded yet and close those that have ended (back in control, a new baseline, or
    no longer raised by the stored history). Idempotent. Returns the alerts recorded
    now; the caller commits."""
    new: list[m.Alert] = []
    for kind in KINDS:
        new.extend(_sync_kind(session, device_id, kind))
    return new


def _sync_kind(session: Session, device_id: int, kind: Kind) -> list[m.Alert]:
    from scanbench.evaluation.alerts import _close, _insert
    from scanbench.store.repo import labels_key

    trends = device_trends(session, device_id, kind)
    found = {f.key: f for t in trends for f in t.alerts}
    new: list[m.Alert] = []
    for f in found.values():
        if session.scalar(select(m.Alert.id).where(m.Alert.key == f.key)) is not None:
            continue
        p = f.point
        labels = _labels(p.exam.protocol, kind)
        row = m.Alert(key=f.key, device_id=device_id, analysis=kind.analysis,
                      name=kind.residual, labels=labels, labels_key=labels_key(labels),
                      rule=f.rule, level="trend", direction=f.direction,
                      result_id=p.exam.result_id, occurred_at=p.exam.time, first_at=f.first,
                      value=p.z, unit="σ", statistic=f.statistic, threshold=f.threshold,
                      limit_source=kind.source, message=f.message, state="open")
        if _insert(session, row):
            new.append(row)
    for row in session.scalars(select(m.Alert).where(
            m.Alert.device_id == device_id, m.Alert.analysis == kind.analysis,
            m.Alert.name == kind.residual, m.Alert.state.in_(("open", "acknowledged")))
            .order_by(m.Alert.id)).all():
        hit = found.get(row.key)
        if hit is None:
            _close(row, "no longer raised by the stored history (a new baseline was "
                        "marked before it, or its result was replaced)", None)
        elif hit.restart is not None:
            when, reason = hit.restart
            _close(row, f"new baseline from {when.isoformat()}"
                        + (f" ({reason})" if reason else ""),
                   hit.end.result_id if hit.end is not None else None)
        elif hit.end is not None:
            e = hit.end
            _close(row, f"back in control: the exam of {e.time.isoformat()} "
                        f"({e.noise:.3g} {kind.noise.unit} at {kind.size.label} "
                        f"{e.size:.0f} {kind.size.unit}) is within 2σ of the model and rule "
                        f"{row.rule} no longer holds", e.result_id)
    session.flush()
    return new


# --------------------------------------------------------------------------- views

def kind_of(key: str) -> Kind:
    """The kind named ``key`` ("ct" or "pet")."""
    from scanbench.errors import InputError

    for kind in KINDS:
        if kind.key == key:
            return kind
    raise InputError(f"kind: {key[:20]!r} is not one of {', '.join(k.key for k in KINDS)}")


def device_view(session: Session, device_id: int, kind: Kind = CT) -> dict[str, Any]:
    """The device's clinical image quality of one kind as the API, the device page and
    the report show it: per protocol its summary, model and exams (with the expected
    noise, the residual and z), in the units of ``quantities``."""
    protocols = []
    for t in device_trends(session, device_id, kind):
        summary = t.summary()
        summary["open_alerts"] = int(session.scalar(
            select(func.count()).select_from(m.Alert).where(
                m.Alert.device_id == device_id, m.Alert.analysis == kind.analysis,
                m.Alert.name == kind.residual, m.Alert.labels_key == _lk(t.protocol, kind),
                m.Alert.state.in_(("open", "acknowledged")))) or 0)
        summary["notes"] = [sg.note for sg in t.segments if sg.note]
        summary["exams_list"] = [{
            "result_id": p.exam.result_id, "series_uid": p.exam.series_uid,
            "acquired_at": p.exam.time.isoformat(), "noise": _num(p.exam.noise),
            "size": _num(p.exam.size), "dose": _num(p.exam.dose), "kvp": p.exam.kvp,
            "kernel": p.exam.kernel, "refused": p.exam.refused, "baseline": p.baseline,
            "expected_noise": p.expected, "residual_ln": p.residual, "z": p.z,
            "segment": p.segment} for p in t.points]
        protocols.append(summary)
    return {"device_id": device_id, **_names(kind), "method": kind.method,
            "baseline_exams": BASELINE_EXAMS, "source": kind.source, "protocols": protocols}


def _lk(protocol: str, kind: Kind = CT) -> str:
    from scanbench.store.repo import labels_key

    return labels_key(_labels(protocol, kind))


def _num(v: float) -> float | None:
    return v if math.isfinite(v) else None


def compare(session: Session, devices: Sequence[m.Device], kind: Kind = CT) -> dict[str, Any]:
    """Clinical image quality compared across devices (one row per device and protocol
    with a fitted model) and across models (rows pooled by manufacturer and model): the
    noise the baseline model predicts at the kind's reference size (CT: D_w 300 mm; PET:
    75 kg) and the protocol's median dose, the median dose and the residual SD."""
    rows = []
    for d in devices:
        for t in device_trends(session, d.id, kind):
            summ = t.summary()
            model = summ["model"]
            if model is None:
                continue
            rows.append({"device_id": d.id, "manufacturer": d.manufacturer,
                         "model": d.model, "protocol": t.protocol,
                         "exams": summ["measured"],
                         "noise_at_reference": model["noise_at_reference"],
                         "median_dose": summ["median_dose"],
                         "median_size": summ["median_size"],
                         "residual_sd_percent": 100 * model["residual_sd_ln"]})
    by_model: dict[tuple[str | None, str | None], list[dict[str, Any]]] = {}
    for r in rows:
        by_model.setdefault((r["manufacturer"], r["model"]), []).append(r)
    models = [{"manufacturer": k[0], "model": k[1], "devices": len({r["device_id"] for r in v}),
               "protocols": len(v), "exams": sum(r["exams"] for r in v),
               "median_noise_at_reference": _median([r["noise_at_reference"] for r in v
                                                     if r["noise_at_reference"]]),
               "median_dose": _median([r["median_dose"] for r in v if r["median_dose"]])}
              for k, v in sorted(by_model.items(), key=lambda kv: (str(kv[0][0]),
                                                                   str(kv[0][1])))]
    return {**_names(kind), "method": kind.method,
            "reference": f"{kind.size.label} {kind.size_reference:g} {kind.size.unit} at the "
                         f"protocol's median {kind.dose.label}",
            "source": kind.source, "devices": rows, "models": models}


__all__ = ["ANALYSIS", "BASELINE_EXAMS", "CT", "KINDS", "METHOD", "PET", "RESIDUAL", "Exam",
           "Kind", "ProtocolTrend", "SizeModel", "compare", "cusum_arl", "device_trends",
           "device_view", "fit_size_model", "kind_of", "load_exams", "protocol_trends",
           "sync_device"]
