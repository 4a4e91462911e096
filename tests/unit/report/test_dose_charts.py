"""report/dose_charts: the figures carry the statistics they are given (boxes from the
database's quartiles, whiskers cut at Tukey's fence, the DRL line with its value and
source in the legend, outliers as points), untrusted labels escaped, and every
figure is valid for plotly (checked by plotly's own validator)."""

from __future__ import annotations

import datetime as dt

import plotly.graph_objects as go
import pytest

from scanbench.clinical import dose_stats as ds
from scanbench.clinical import reference_levels as rl
from scanbench.report import dose_charts as charts

XSS = "<script>alert(1)</script>"


def _stats() -> ds.DoseStatistics:
    d1 = ds.Distribution(n=5, minimum=1.0, q1=2.0, median=3.0, q3=4.0, maximum=100.0,
                         mean=22.0, p95=80.8)
    d2 = ds.Distribution(n=3, minimum=10.0, q1=11.0, median=12.0, q3=13.0, maximum=14.0,
                         mean=12.0, p95=13.9)
    ref = ds.ReferenceComparison("t", "Table T", "Journal 2022", "chest", 13.3, None,
                                 12.0 / 13.3, 13.0 / 13.3, "within")
    groups = [ds.DoseGroup(1, f"Head {XSS}", d1), ds.DoseGroup(2, "Chest", d2, "chest", ref)]
    outliers = [ds.Outlier(7, 70, "1.2.3", 1, f"Head {XSS}", dt.datetime(2026, 1, 1),
                           100.0, 7.0)]
    return ds.DoseStatistics(ds.QUANTITIES["ctdivol_mgy"], "device_protocol", groups,
                             outliers, 1, rl.load_table("guangzhou-2022-survey"))


def test_dose_box_figure_from_quartiles_with_reference_and_outliers() -> None:
    fig = charts.dose_box_figure(_stats(), {1: "CT one", 2: XSS})
    go.Figure(fig)  # plotly's validator: raises on any unknown or malformed property
    boxes = [t for t in fig["data"] if t["type"] == "box"]
    assert [b["name"] for b in boxes] == ["CT one", "&lt;script&gt;alert(1)&lt;/script&gt;"]
    head = boxes[0]
    assert (head["q1"], head["median"], head["q3"], head["lowerfence"]) == (
        [2.0], [3.0], [4.0], [1.0])
    assert head["upperfence"] == [7.0]  # 4 + 1.5 x 2: the whisker stops at the fence
    assert boxes[1]["upperfence"] == [14.0]  # n < 4: no fence, the maximum
    assert all("<" not in x for b in boxes for x in b["x"])
    (points,) = [t for t in fig["data"] if t.get("name") == "outliers"]
    assert points["y"] == [100.0]
    (drl,) = [t for t in fig["data"] if t["name"].startswith("DRL")]
    assert drl["y"] == [13.3] and drl["x"] == ["Chest"]
    assert "13.3 mGy" in drl["name"] and "Journal 2022" in drl["name"]


def test_workflow_and_comparison_figures() -> None:
    hist = charts.histogram_figure([(0.0, 2), (5.0, 3)], 5.0, "Durations", "min",
                                   window=(55.0, 75.0))
    go.Figure(hist)
    assert hist["data"][0]["x"] == [2.5, 7.5] and hist["data"][0]["y"] == [2, 3]
    assert hist["layout"]["shapes"][0]["x0"] == 55.0
    days = [ds.DeviceDayUse(1, dt.date(2026, 3, 2), 6, 3.0, 10.0, "staffed hours"),
            ds.DeviceDayUse(2, dt.date(2026, 3, 3), 2, 2.0, 24.0, "24 h")]
    heat = charts.utilisation_heatmap(days, {1: "A", 2: "B"})
    go.Figure(heat)
    assert heat["data"][0]["z"] == [[30.0, None], [None, pytest.approx(100 / 12)]]
    assert heat["data"][0]["x"] == ["2026-03-02", "2026-03-03"]
    d = ds.Distribution(3, 1.0, 1.5, 2.0, 4.0, 6.0, 3.0)
    rows = [ds.DeviceValue(1, 10, 6.0, dt.datetime(2026, 3, 3), "pass", 5, d),
            ds.DeviceValue(2, 11, 16.0, None, None, None, None)]
    cmp_ = charts.comparison_figure("noise_hu", "HU", rows, {1: "A", 2: "B"},
                                    {10: "Site X", 11: "Site Y"})
    go.Figure(cmp_)
    boxes = [t for t in cmp_["data"] if t["type"] == "box"]
    assert len(boxes) == 1 and boxes[0]["x"] == ["Site X / A"] and boxes[0]["median"] == [2.0]
    latest = [t for t in cmp_["data"] if t["type"] == "scatter"]
    assert [t["y"] for t in latest] == [[6.0], [16.0]]
