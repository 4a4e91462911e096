"""The multi-series hook (GroupAnalysis): groups run together, leftovers run alone."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from scanbench.analysis import registry
from scanbench.analysis.base import is_group_analysis
from scanbench.api import analyze_paths
from scanbench.errors import AnalysisError
from scanbench.simulate.pet import simulate_uniform
from scanbench.types import Result, Series


class _Pair:
    """Groups series two by two (as a difference-SNR method pairs acquisitions)."""

    id: ClassVar[str] = "test.pair"
    modality: ClassVar[str] = "PT"
    standard: ClassVar[str] = "none"
    title: ClassVar[str] = "pairs"
    fail: ClassVar[bool] = False

    def detect(self, series: Series) -> float:
        return 0.0

    def run(self, series: Series, **params: Any) -> Result:
        raise AnalysisError("needs a pair")

    def figures(self, result: Result) -> list[Any]:
        return []

    def group(self, series: Sequence[Series]) -> list[tuple[Series, ...]]:
        pts = sorted((s for s in series if s.facts.modality == "PT"),
                     key=lambda s: str(s.files[0]))
        return [tuple(pts[i:i + 2]) for i in range(0, len(pts) - 1, 2)]

    def run_group(self, group: tuple[Series, ...], **params: Any) -> list[Result]:
        if self.fail:
            raise AnalysisError("the pair differs", where="pair")
        out = []
        for s in group:
            r = Result(analysis=self.id, standard="none", series_instance_uid=s.uid,
                       device=s.facts.device, acquired_at=None)
            r.add("group_size", len(group), "1")
            out.append(r)
        return out


@pytest.fixture
def pair() -> Iterator[type[_Pair]]:
    registry.all_analyses()
    registry._REGISTRY[_Pair.id] = _Pair()
    yield _Pair
    _Pair.fail = False
    del registry._REGISTRY[_Pair.id]


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("three")
    for i, name in enumerate("abc"):
        simulate_uniform(base / name, seed=i + 1, voxel_mm=8.0)
    return base


def test_protocol_is_recognised(pair: type[_Pair]) -> None:
    assert is_group_analysis(registry.get(pair.id))
    assert not is_group_analysis(registry.get("pet.calibration_uniformity"))


def test_group_claims_two_and_the_third_runs_alone(pair: type[_Pair], three: Path) -> None:
    rep = analyze_paths([three])
    assert not rep.failures
    ids = sorted(r.analysis for r in rep.results)
    assert ids == ["pet.calibration_uniformity", "test.pair", "test.pair"]
    for r in rep.results:
        assert r.source  # every result says where it came from
        if r.analysis == "test.pair":
            assert r.get("group_size").value == 2


def test_named_group_analysis_reports_the_series_it_leaves_out(pair: type[_Pair],
                                                               three: Path) -> None:
    rep = analyze_paths([three], analysis=pair.id)
    assert len(rep.results) == 2
    assert len(rep.failures) == 1
    assert "does not recognise this PT series" in rep.failures[0].reason


def test_a_failing_group_is_a_named_failure_and_the_rest_goes_on(pair: type[_Pair],
                                                                 three: Path) -> None:
    pair.fail = True
    rep = analyze_paths([three])
    assert [f.reason for f in rep.failures] == ["the pair differs"]
    assert [r.analysis for r in rep.results] == ["pet.calibration_uniformity"]
