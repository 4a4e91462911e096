"""MRI magnet telemetry: helium level, pressure, cold-head temperature and field drift as
time series from CSV, the helium boil-off rate, refill detection and the comparison of
two magnets (e.g. a conventional and a helium-free "sealed" magnet).

CSV format (UTF-8, header row; the unit is part of each column's name)
----------------------------------------------------------------------
``device``, ``time`` (ISO 8601), and any of ``helium_level_pct`` (% of the dewar's
capacity), ``pressure_kpa`` (helium vessel pressure, kPa), ``coldhead_temp_k`` (K),
``field_drift_ppm_per_h`` (ppm/h). Empty cells are missing values. Each problem is
reported with the file, the line and the field.

Boil-off method
---------------
* **Segments**: the helium-level series of one magnet, in time order, is cut where the
  level rises by more than ``refill_jump_pct`` (default 2 percentage points) above the
  median of the (up to) three previous samples of the same segment: a refill starts a new segment
  (boil-off only lowers the level). The median keeps the recovery after a single
  spuriously low reading from counting as a refill.
* **Rate**: in the last segment, over the samples of the last ``window_days`` (default
  30 days), the Theil–Sen slope (median of the pairwise slopes; Sen 1968, J Am Stat Assoc
  63:1379; ``scipy.stats.theilslopes``) of level against time in days, with its 95 %
  confidence interval (the distribution-free interval of Sen 1968, as scipy computes
  it). The boil-off rate is the negated slope in %/day and, given the dewar's liquid
  helium capacity in litres, ``rate / 100 × capacity`` in L/day. Theil–Sen is robust: a
  single spurious reading (up to ~29 % of them) does not move it, where least squares
  would.
* **Sealed magnet**: a rate is *consistent with zero* when its confidence interval
  contains 0; a helium-free magnet is expected to show that, a conventional magnet a
  rate whose interval excludes 0.
* **Comparison** of two magnets: the difference of the rates, and whether the two
  95 % intervals are disjoint (a conservative test: disjoint intervals mean different
  rates; overlapping ones do not prove them equal).

At least ``min_points`` (default 5) samples spanning at least ``min_days`` (default 3
days) are needed; with fewer, the rate is None with the reason.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats

from scanbench.errors import InputError

CHANNELS = ("helium_level_pct", "pressure_kpa", "coldhead_temp_k", "field_drift_ppm_per_h")
UNITS = {"helium_level_pct": "%", "pressure_kpa": "kPa", "coldhead_temp_k": "K",
         "field_drift_ppm_per_h": "ppm/h"}


@dataclass(frozen=True)
class TelemetrySample:
    """One reading of one magnet; None where the CSV had no value."""

    device: str
    time: dt.datetime
    helium_level_pct: float | None = None
    pressure_kpa: float | None = None
    coldhead_temp_k: float | None = None
    field_drift_ppm_per_h: float | None = None


@dataclass(frozen=True)
class HeliumSegment:
    """Samples between two refills (indices into the device's sorted helium series)."""

    start: dt.datetime
    end: dt.datetime
    first_level_pct: float
    last_level_pct: float
    points: int


@dataclass(frozen=True)
class BoilOff:
    """The boil-off of one magnet (see module doc). Rates are positive when helium is
    lost; ``ci_pct_per_day`` is the 95 % interval of the rate."""

    device: str
    segments: tuple[HeliumSegment, ...]
    refills: tuple[dt.datetime, ...]
    window_start: dt.datetime | None
    window_end: dt.datetime | None
    points: int
    rate_pct_per_day: float | None
    ci_pct_per_day: tuple[float, float] | None
    rate_l_per_day: float | None = None
    ci_l_per_day: tuple[float, float] | None = None
    dewar_l: float | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def consistent_with_zero(self) -> bool | None:
        """True when the 95 % interval contains 0 (a sealed magnet's expectation)."""
        if self.ci_pct_per_day is None:
            return None
        return self.ci_pct_per_day[0] <= 0.0 <= self.ci_pct_per_day[1]


@dataclass(frozen=True)
class BoilOffComparison:
    a: BoilOff
    b: BoilOff
    difference_pct_per_day: float | None  # a − b
    different: bool | None  # the two 95 % intervals are disjoint


def read_telemetry_csv(path: str | Path) -> list[TelemetrySample]:
    """Read a telemetry CSV (format in the module doc), sorted by device and time."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read the telemetry CSV: {e}", path) from None
    reader = csv.DictReader(text.splitlines(keepends=True))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    allowed = ("device", "time", *CHANNELS)
    bad = [h for h in header if h not in allowed]
    missing = [c for c in ("device", "time") if c not in header]
    if not header or bad or missing or not any(c in header for c in CHANNELS):
        raise InputError(
            "line 1: header: " + "; ".join(
                [f"unknown column {b!r}" for b in bad]
                + [f"missing column {m!r}" for m in missing]
                + ([] if any(c in header for c in CHANNELS) else ["no telemetry column"]))
            + f" (columns: {', '.join(allowed)})", path)
    reader.fieldnames = header
    out: list[TelemetrySample] = []
    errors: list[str] = []
    aware: bool | None = None
    for row in reader:
        line = reader.line_num
        vals = {k: (v or "").strip() for k, v in row.items() if k is not None}
        if not any(vals.values()):
            continue
        n = len(errors)
        if not vals.get("device"):
            errors.append(f"{path}:{line}: field 'device': empty")
        t: dt.datetime | None = None
        try:
            t = dt.datetime.fromisoformat(vals.get("time", ""))
            if aware is None:
                aware = t.tzinfo is not None
            elif aware != (t.tzinfo is not None):
                errors.append(f"{path}:{line}: field 'time': times with and without a UTC "
                              "offset are mixed")
        except ValueError:
            errors.append(f"{path}:{line}: field 'time': {vals.get('time', '')!r} is not "
                          "an ISO 8601 date-time")
        nums: dict[str, float | None] = {}
        for c in CHANNELS:
            raw = vals.get(c, "")
            if not raw:
                nums[c] = None
                continue
            try:
                v = float(raw)
                if not math.isfinite(v):
                    raise ValueError
            except ValueError:
                errors.append(f"{path}:{line}: field {c!r}: {raw!r} is not a number "
                              f"({UNITS[c]})")
                continue
            if c == "helium_level_pct" and not 0.0 <= v <= 100.0:
                errors.append(f"{path}:{line}: field {c!r}: {v} % is outside 0–100 %")
                continue
            nums[c] = v
        if len(errors) == n and t is not None:
            out.append(TelemetrySample(vals["device"], t, **nums))
    if errors:
        raise InputError(f"{len(errors)} problem(s) in the telemetry CSV:\n"
                         + "\n".join(errors), path)
    out.sort(key=lambda s: (s.device, s.time))
    return out


@dataclass(frozen=True)
class TelemetrySeries:
    """One channel of one magnet in time order, with its unit (for a chart or a trend)."""

    device: str
    channel: str
    unit: str
    times: tuple[dt.datetime, ...]
    values: tuple[float, ...]


def series(samples: list[TelemetrySample], device: str, channel: str) -> TelemetrySeries:
    """The readings of ``channel`` (one of :data:`CHANNELS`) of ``device``, missing
    values left out."""
    if channel not in CHANNELS:
        raise InputError(f"unknown telemetry channel {channel!r}; expected one of "
                         f"{', '.join(CHANNELS)}")
    pts = sorted((s.time, v) for s in samples if s.device == device
                 and (v := getattr(s, channel)) is not None)
    return TelemetrySeries(device, channel, UNITS[channel], tuple(t for t, _ in pts),
                           tuple(float(v) for _, v in pts))


def _days(t: dt.datetime, t0: dt.datetime) -> float:
    return (t - t0).total_seconds() / 86400.0


def boil_off(samples: list[TelemetrySample], device: str, *, dewar_l: float | None = None,
             window_days: float = 30.0, refill_jump_pct: float = 2.0, min_points: int = 5,
             min_days: float = 3.0) -> BoilOff:
    """Helium boil-off of ``device`` (method in the module doc)."""
    pts = sorted((s.time, s.helium_level_pct) for s in samples
                 if s.device == device and s.helium_level_pct is not None)
    notes: list[str] = []
    if not pts:
        return BoilOff(device, (), (), None, None, 0, None, None, dewar_l=dewar_l,
                       notes=(f"no helium level readings for {device}",))
    levels = [float(v or 0.0) for _, v in pts]
    # compared with the median of the up to 3 previous readings, so that the recovery
    # after one spuriously low reading is not taken for a refill
    cuts = [0]
    for i in range(1, len(pts)):
        # statistics.median, not np.median: the same value for up to three numbers, and
        # about 20x faster per call (a year of hourly readings is 8,760 calls).
        if levels[i] - statistics.median(levels[max(cuts[-1], i - 3):i]) > refill_jump_pct:
            cuts.append(i)
    bounds = list(zip(cuts, [*cuts[1:], len(pts)], strict=True))
    segs = tuple(HeliumSegment(pts[a][0], pts[b - 1][0], float(pts[a][1] or 0.0),
                               float(pts[b - 1][1] or 0.0), b - a) for a, b in bounds)
    refills = tuple(pts[c][0] for c in cuts[1:])
    a, b = bounds[-1]
    last = pts[a:b]
    w0 = last[-1][0] - dt.timedelta(days=window_days)
    win = [(t, v) for t, v in last if t >= w0]
    if refills:
        notes.append(f"{len(refills)} refill(s) detected; the rate is from the samples "
                     f"after the last one ({refills[-1].isoformat()})")
    span = _days(win[-1][0], win[0][0])
    if len(win) < min_points or span < min_days:
        notes.append(f"too few helium readings for a rate: {len(win)} over {span:.3g} days "
                     f"(need {min_points} over {min_days:g} days)")
        return BoilOff(device, segs, refills, win[0][0], win[-1][0], len(win), None, None,
                       dewar_l=dewar_l, notes=tuple(notes))
    x = np.array([_days(t, win[0][0]) for t, _ in win])
    y = np.array([float(v or 0.0) for _, v in win])
    res = stats.theilslopes(y, x, alpha=0.95)
    rate = -float(res.slope)
    ci = (-float(res.high_slope), -float(res.low_slope))
    rate_l = ci_l = None
    if dewar_l is not None:
        rate_l = rate / 100.0 * dewar_l
        ci_l = (ci[0] / 100.0 * dewar_l, ci[1] / 100.0 * dewar_l)
    return BoilOff(device, segs, refills, win[0][0], win[-1][0], len(win), rate, ci,
                   rate_l, ci_l, dewar_l, tuple(notes))


def compare_boil_off(a: BoilOff, b: BoilOff) -> BoilOffComparison:
    """Difference of two magnets' rates and whether their 95 % intervals are disjoint."""
    if a.rate_pct_per_day is None or b.rate_pct_per_day is None:
        return BoilOffComparison(a, b, None, None)
    assert a.ci_pct_per_day is not None and b.ci_pct_per_day is not None
    disjoint = (a.ci_pct_per_day[1] < b.ci_pct_per_day[0]
                or b.ci_pct_per_day[1] < a.ci_pct_per_day[0])
    return BoilOffComparison(a, b, a.rate_pct_per_day - b.rate_pct_per_day, disjoint)
