"""scanbench.api: one series' failure never loses the others, and is named."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from scanbench.analysis import registry
from scanbench.api import analyze_paths
from scanbench.errors import ScanbenchError
from scanbench.simulate.pet import simulate_uniform
from scanbench.types import Result, Series


class _Defective:
    """An analysis with a bug (IndexError), as a new analysis might have."""

    id: ClassVar[str] = "test.defective"
    modality: ClassVar[str] = "PT"
    standard: ClassVar[str] = "none"
    title: ClassVar[str] = "defective"

    def detect(self, series: Series) -> float:
        return 0.0

    def run(self, series: Series, **params: Any) -> Result:
        return [][1]

    def figures(self, result: Result) -> list[Any]:
        return []


@pytest.fixture
def defective() -> Iterator[str]:
    registry.all_analyses()  # load the real ones first
    registry._REGISTRY[_Defective.id] = _Defective()
    yield _Defective.id
    del registry._REGISTRY[_Defective.id]


def test_a_defect_is_a_named_failure_and_other_series_survive(defective: str,
                                                              tmp_path: Path) -> None:
    simulate_uniform(tmp_path / "a", seed=1, voxel_mm=8.0)
    simulate_uniform(tmp_path / "b", seed=2, voxel_mm=8.0)
    rep = analyze_paths([tmp_path], analysis=defective)
    assert rep.series_read == 2 and not rep.results
    assert len(rep.failures) == 2
    for f in rep.failures:
        assert "internal error (IndexError" in f.reason and "Uniform cylinder" in f.where
    good = analyze_paths([tmp_path])  # the same data with the real analysis
    assert len(good.results) == 2 and not good.failures


def test_python_analyze_raises_a_scanbench_error_naming_the_series(defective: str,
                                                                   tmp_path: Path) -> None:
    import scanbench

    simulate_uniform(tmp_path / "a", seed=1, voxel_mm=8.0)
    with pytest.raises(ScanbenchError, match="internal error") as info:
        scanbench.analyze(tmp_path, analysis=defective)
    assert "Uniform cylinder" in str(info.value)


def test_reading_progress_counts_every_file(tmp_path: Path) -> None:
    simulate_uniform(tmp_path / "a", seed=1, voxel_mm=8.0)
    (tmp_path / "notes.txt").write_text("not DICOM")
    n_files = sum(1 for p in tmp_path.rglob("*") if p.is_file())
    calls: list[tuple[int, int]] = []
    named: list[str] = []
    rep = analyze_paths([tmp_path], read_progress=lambda d, t: calls.append((d, t)),
                        progress=named.append)
    assert len(rep.results) == 1
    assert calls[-1] == (n_files, n_files)  # every file, the ground truth and notes included
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert len(named) == 1 and "Uniform cylinder" in named[0]
