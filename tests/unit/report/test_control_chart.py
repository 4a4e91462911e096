"""The control chart builder (report/control_chart.py): bands per baseline segment equal
the segment's mean ± kσ (recomputed here from the values), one mark per value at which a
trend rule fired, downsampling that keeps every marked value and each bucket's extremes,
limits with their source, lifecycle events, escaping of outside text."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from scanbench.report.control_chart import (
    ChartEvent,
    build_control_chart,
    keep_indices,
    trend_of,
)
from scanbench.store.repo import Point

T0 = dt.datetime(2016, 1, 1, 8, 0)
XSS = "<img src=x onerror=alert(1)>"


def _points(values: list[float], *, low: float | None = None, high: float | None = None,
            source: str | None = None, verified: bool | None = True,
            status: list[str] | None = None) -> list[Point]:
    return [Point(T0 + dt.timedelta(days=i), v, "mm", 0.05,
                  (status[i] if status else "pass"), {}, 1000 + i, f"1.2.{i}", None,
                  low, high, source, verified)
            for i, v in enumerate(values)]


def _trace(fig: dict, name: str) -> list[dict]:
    return [t for t in fig["data"] if t["name"] == name]


def test_bands_are_each_segments_mean_plus_minus_k_sigma_and_restart_at_new_baseline(
        ) -> None:
    rng = np.random.default_rng(1)
    values = list(10 + 0.5 * rng.standard_normal(40)) + list(12 + 0.3 * rng.standard_normal(40))
    pts = _points(values)
    events = [ChartEvent(T0 + dt.timedelta(days=40), "part_replacement", "detector block",
                         new_baseline=True)]
    trend = trend_of(pts, "m", "mm", events)
    chart = build_control_chart(pts, title="t", name="fwhm_mm", unit="mm", trend=trend,
                                events=events)
    expected = []
    for start in (0, 40):  # phase I: the first 20 values of each segment
        base = np.array(values[start:start + 20])
        expected.append((base.mean(), base.std(ddof=1), start, start + 39))
    for k, name in ((2.0, "baseline ±2σ"), (3.0, "baseline ±3σ")):
        bands = _trace(chart.figure, name)
        assert len(bands) == 2
        for band, (mean, sd, first, last) in zip(bands, expected, strict=True):
            lo, hi = min(band["y"]), max(band["y"])
            assert lo == pytest.approx(mean - k * sd, rel=1e-12)
            assert hi == pytest.approx(mean + k * sd, rel=1e-12)
            # the band spans its own segment only: the baseline restarts at the event
            assert min(band["x"]) == pts[first].acquired_at.isoformat()
            assert max(band["x"]) == pts[last].acquired_at.isoformat()
    means = _trace(chart.figure, "baseline mean μ0")
    assert [t["y"][0] for t in means] == pytest.approx([e[0] for e in expected])


def test_one_marker_per_value_where_a_rule_fired_with_the_rule_in_the_hover() -> None:
    rng = np.random.default_rng(7)
    values = list(100 + rng.standard_normal(60)) + list(104 + rng.standard_normal(30))
    pts = _points(values)
    trend = trend_of(pts, "m", "mm")
    assert trend.alerts, "a 4σ step must fire"
    chart = build_control_chart(pts, title="t", name="x", unit="mm", trend=trend)
    (marks,) = _trace(chart.figure, "trend rule broken")
    at = sorted({a.index for a in trend.alerts})
    assert marks["meta"]["indices"] == at
    assert marks["x"] == [pts[i].acquired_at.isoformat() for i in at]
    assert marks["y"] == [values[i] for i in at]
    assert marks["marker"]["symbol"] == "x"
    for i, rules, text in zip(at, marks["meta"]["rules"], marks["text"], strict=True):
        assert sorted(rules) == sorted(a.rule for a in trend.alerts if a.index == i)
        for r in rules:
            assert r in text
    assert any(i >= 60 for i in at)  # the step is caught


def test_downsampling_keeps_every_alert_point_and_each_buckets_min_and_max() -> None:
    rng = np.random.default_rng(3)
    values = list(50 + rng.standard_normal(3650))
    values[2000] = 80.0  # a spike: 1-3s
    values[3000] = 20.0
    pts = _points(values)
    trend = trend_of(pts, "m", "mm")
    chart = build_control_chart(pts, title="t", name="x", unit="mm", trend=trend,
                                max_points=200)
    (series,) = _trace(chart.figure, "x")
    drawn_x = set(series["x"])
    alert_idx = {a.index for a in trend.alerts}
    assert {2000, 3000} <= alert_idx
    for i in alert_idx:
        assert pts[i].acquired_at.isoformat() in drawn_x
    assert max(series["y"]) == 80.0 and min(series["y"]) == 20.0
    assert chart.total == 3650
    segment_ends = 2 * len(trend.segments)
    assert chart.drawn <= 200 + len(alert_idx) + segment_ends
    assert chart.drawn == len(series["x"])


def test_keep_indices_min_max_per_bucket_plus_forced() -> None:
    values = [float(v) for v in np.random.default_rng(5).permutation(1000)]
    kept = keep_indices(values, 100, always=[3])
    size = 1000 / 50
    for b in range(50):
        chunk = range(int(b * size), int((b + 1) * size))
        assert min(chunk, key=lambda i: values[i]) in kept
        assert max(chunk, key=lambda i: values[i]) in kept
    assert 3 in kept
    assert kept == sorted(kept)
    assert keep_indices(values[:50], 100) == list(range(50))
    with_missing = [None] * 10 + values[:990]
    assert 0 in keep_indices(with_missing, 200)  # an all-missing bucket keeps its first


def test_limits_drawn_with_their_source_escaped_and_unit_on_the_axis() -> None:
    status = ["pass"] * 9 + ["fail"]
    pts = _points([1.0] * 9 + [7.0], low=-5, high=5, source=f"NEMA NU 2-2018 {XSS}",
                  status=status)
    chart = build_control_chart(pts, title="t", name="bias", unit="%")
    limits = [t for t in chart.figure["data"] if t["name"].startswith("limit: ")]
    assert {t["meta"]["side"] for t in limits} == {"low", "high"}
    high = next(t for t in limits if t["meta"]["side"] == "high")
    assert set(v for v in high["y"] if v is not None) == {5}
    assert len(high["x"]) == 2  # ten equal limits: a step line of two points
    assert "NEMA NU 2-2018" in high["name"] and "<img" not in high["name"]
    assert "&lt;img" in high["hovertemplate"]
    (outside,) = _trace(chart.figure, "outside a limit")
    assert outside["meta"]["indices"] == [9]
    assert chart.figure["layout"]["yaxis"]["title"]["text"] == "bias (%)"


def test_unconfirmed_limit_is_dotted_and_says_so() -> None:
    pts = _points([1.0, 2.0], low=0, high=1.5, source="WS 817-2023", verified=False,
                  status=["within_unconfirmed", "outside_unconfirmed"])
    chart = build_control_chart(pts, title="t", name="x", unit="")
    limits = [t for t in chart.figure["data"] if t["name"].startswith("limit: ")]
    assert all("(unconfirmed)" in t["name"] and t["line"]["dash"] == "dot" for t in limits)
    (outside,) = _trace(chart.figure, "outside a limit")
    assert "not judged" in outside["text"][0]
    assert chart.figure["layout"]["yaxis"]["title"]["text"] == "x"  # no unit to print


def test_lifecycle_events_are_vertical_markers_with_escaped_notes() -> None:
    pts = _points([1.0, 1.1, 0.9])
    when = T0 + dt.timedelta(days=1, hours=3)
    chart = build_control_chart(pts, title="t", name="x", unit="mm",
                                events=[ChartEvent(when, "software_change", XSS)])
    (ev,) = _trace(chart.figure, "lifecycle events")
    assert ev["x"][:2] == [when.isoformat()] * 2 and ev["y"][:2] == [0.0, 1.0]
    assert ev["yaxis"] == "y2"
    assert "<img" not in ev["text"][0] and "&lt;img" in ev["text"][0]
    assert "software change" in ev["text"][0]


def test_missing_values_are_skipped_and_points_without_time_refused() -> None:
    pts = _points([1.0, 2.0, 3.0])
    pts[1] = Point(pts[1].acquired_at, None, "mm", None, "refused", {}, 5, None)
    chart = build_control_chart(pts, title="t", name="x", unit="mm")
    (series,) = _trace(chart.figure, "x")
    assert series["y"] == [1.0, 3.0]
    assert any("not drawn" in n for n in chart.notes)
    with pytest.raises(ValueError, match="acquisition time"):
        build_control_chart([Point(None, 1.0, "mm", None, "pass", {}, 1, None)],
                            title="t", name="x", unit="mm")


def test_a_marks_hover_says_what_became_of_its_stored_alert() -> None:
    rng = np.random.default_rng(7)
    values = list(100 + rng.standard_normal(60)) + list(104 + rng.standard_normal(30))
    pts = _points(values)
    trend = trend_of(pts, "m", "mm")
    first = trend.alerts[0]
    states = {(first.rule, first.time): f"acknowledged: refilled {XSS}"}
    chart = build_control_chart(pts, title="t", name="x", unit="mm", trend=trend,
                                alert_states=states)
    (marks,) = _trace(chart.figure, "trend rule broken")
    at = marks["meta"]["indices"].index(first.index)
    assert "alert acknowledged: refilled &lt;img" in marks["text"][at]
    assert sum("alert acknowledged" in t for t in marks["text"]) == 1
