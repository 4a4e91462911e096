"""Reference-level tables, comparisons and the local-DRL calculator."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import pytest
import yaml

from scanbench.clinical import reference_levels as rl
from scanbench.clinical.dose import doses_from_paths
from scanbench.errors import SpecError
from scanbench.simulate.clinical import DeviceSpec, simulate_ct_exams


@pytest.fixture(scope="module")
def programme(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three facilities (devices), chest and abdomen-pelvis exams, dose reports only."""
    out = tmp_path_factory.mktemp("programme")
    for i in range(3):
        simulate_ct_exams(out / f"site{i}", n=5, seed=10 + i, images=False,
                          protocols=("chest", "abdomen_pelvis"),
                          device=DeviceSpec("Vendor", f"Model{i}", f"SN{i}", f"ST{i}"))
    return out


def test_shipped_tables_load() -> None:
    names = rl.list_tables()
    assert {"ws-t-637-2018-template", "guangzhou-2022-survey"} <= set(names)
    for name in names:
        table = rl.load_table(name)
        assert table.source and table.exams
    assert rl.load_table("guangzhou-2022-survey").confidence == "C"
    assert rl.load_table("ws-t-637-2018-template").confidence == "U"


@pytest.mark.parametrize(("raw", "message"), [
    ({"name": "x", "source": "y"}, "missing 'exams'"),
    ({"name": "x", "source": "y", "exams": [{"exam": "a", "match": {"regions": ["leg"]}}]},
     "unknown region 'leg'"),
    ({"name": "x", "source": "y", "exams": [{"exam": "a", "match": {}}]},
     "needs regions or description"),
    ({"name": "x", "source": "y", "exams": [{"exam": "a", "match": {"regions": ["chest"]},
                                             "dlp_mgycm": {"p99": 3}}]}, "use drl"),
    ({"name": "x", "source": "y", "confidence": "maybe", "exams": []}, "use C, P or U"),
])
def test_bad_tables_are_refused(raw: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        rl.parse_table(raw, "t.yaml")


def test_unknown_table_name() -> None:
    with pytest.raises(SpecError, match="no DRL table 'nope'"):
        rl.load_table("nope")


@pytest.mark.parametrize(("value", "expected"), [
    (20.0, "above_drl"), (12.0, "above_achievable"), (4.0, "below_abnormally_low"),
    (8.0, "within"), (15.0, "above_achievable"), (5.0, "within"),
])
def test_outcome(value: float, expected: str) -> None:
    assert rl.outcome(value, {"drl": 15.0, "achievable": 10.0, "abnormally_low": 5.0}) == expected


def test_local_drl_is_percentiles_of_facility_medians() -> None:
    per = {"a": [1.0, 2.0, 9.0], "b": [4.0, 4.0], "c": [10.0], "d": [6.0, 8.0]}
    medians = [2.0, 4.0, 10.0, 7.0]
    got = rl.local_drl(per)
    assert got == {"drl": float(np.percentile(medians, 75)),
                   "achievable": float(np.percentile(medians, 50)),
                   "abnormally_low": float(np.percentile(medians, 25))}
    assert rl.local_drl(per, min_per_facility=2)["drl"] == float(np.percentile([2, 4, 7], 75))


def test_programme_local_drl_round_trip(programme: Path, tmp_path: Path) -> None:
    studies = doses_from_paths([programme]).studies
    assert len(studies) == 15
    categories = rl.load_table("ws-t-637-2018-template")
    data = rl.local_drl_table(studies, categories, "test-region")
    chest = next(e for e in data["exams"] if e["exam"] == "chest")
    assert chest["facilities"] == 3
    medians = []
    for site in ("SN0", "SN1", "SN2"):
        dlps = [s.total_dlp_mgycm for s in studies if s.device.serial == site
                and rl._main_region(s) == "chest"]
        medians.append(statistics.median(dlps))
    assert chest["dlp_mgycm"]["drl"] == pytest.approx(np.percentile(medians, 75), abs=0.005)
    # the written table loads back and compares the same studies
    path = tmp_path / "local.yaml"
    path.write_text(yaml.safe_dump(data))
    table = rl.load_table(path)
    comps = rl.compare_medians(studies, table)
    assert {c.exam for c in comps} == {"chest", "abdomen"}
    assert sorted({c.n for c in comps}) == [2, 3]  # 5 exams a site, chest and abdomen in turn
    assert {c.subject.split(" | ")[1] for c in comps} == {"Routine Chest", "Abdomen Pelvis"}
    chest_dlp = [c for c in comps if c.exam == "chest" and c.quantity == "dlp_mgycm"]
    assert sorted(c.value for c in chest_dlp) == pytest.approx(sorted(medians))
    by_category = rl.compare_medians(studies, table, by="category")
    assert {c.subject.split(" | ")[1] for c in by_category} == {"chest", "abdomen"}
    per_exam = rl.compare_exams(studies, table)
    assert len(per_exam) == 2 * 15
    above = sum(c.outcome == "above_drl" for c in per_exam if c.quantity == "dlp_mgycm")
    assert 0 < above < 15  # the P75 of medians splits the exams
