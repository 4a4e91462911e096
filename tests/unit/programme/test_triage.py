"""The triage model (scanbench.programme.triage) on a fixed-seed simulated device class:
a correlated multi-measurement shift that no single limit fails ranks above normal
results; the drivers name the shifted measurements; missing values; too little history
is not scored; a model survives its file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scanbench.errors import InputError
from scanbench.programme import triage

NAMES = [f"m{i}" for i in range(6)]
SD = np.array([1.0, 2.0, 0.5, 3.0, 1.0, 0.2])
LIMIT_SIGMA = 4.0


def _normal(rng: np.random.Generator, n: int) -> np.ndarray:
    """Six values: the first four share one cause (loading 0.9), the last two another."""
    f = rng.standard_normal((n, 2))
    load = np.array([[0.9, 0], [0.9, 0], [0.9, 0], [0.9, 0], [0, 0.8], [0, 0.8]])
    own = np.sqrt(1 - (load ** 2).sum(axis=1))
    return (f @ load.T + rng.standard_normal((n, 6)) * own) * SD


def _vals(x: np.ndarray) -> dict[triage.Key, float | None]:
    return {(n, "{}"): float(v) for n, v in zip(NAMES, x, strict=True)}


@pytest.fixture(scope="module")
def model() -> triage.TriageModel:
    rng = np.random.default_rng(7)
    hist = _normal(rng, 200)
    mdl = triage.fit("CT/sim", [(i, _vals(x)) for i, x in enumerate(hist)], "test history")
    assert isinstance(mdl, triage.TriageModel)
    return mdl


def test_a_correlated_shift_within_limits_ranks_above_normal_results(
        model: triage.TriageModel) -> None:
    rng = np.random.default_rng(11)
    normal = _normal(rng, 100)
    fault = np.zeros(6)  # a typical result, then two shared-cause values part ways by 2 σ
    fault[[0, 1]] += np.array([2.0, -2.0]) * SD[[0, 1]]
    assert (np.abs(fault) < LIMIT_SIGMA * SD).all()  # no limit fails: limits rank it last
    scores = [s for s in (model.score(_vals(x)).score for x in normal) if s is not None]
    got = model.score(_vals(fault))
    assert got.score is not None and len(scores) == 100
    assert sum(s >= got.score for s in scores) <= 1  # top 2 of 101
    assert {d["name"] for d in got.drivers[:2]} == {"m0", "m1"}
    assert got.model == model.version and got.model.startswith("mcd-1:CT/sim:")
    # a normal result's score is about its distance: sqrt(chi2 p=6) is ~2.3 on average
    assert 1.5 < float(np.median(scores)) < 3.5


def test_missing_values_are_imputed_and_listed_and_too_many_not_scored(
        model: triage.TriageModel) -> None:
    x = _vals(_normal(np.random.default_rng(3), 1)[0])
    x[("m2", "{}")] = None
    got = model.score(x)
    assert got.score is not None
    assert {"name": "m2", "labels": {}, "missing": True} in got.drivers
    for n in NAMES[:4]:
        x[(n, "{}")] = None
    none = model.score(x)
    assert none.score is None and "4 of the class's 6 measurements are missing" in none.reason


def test_too_little_history_is_not_scored() -> None:
    x = _normal(np.random.default_rng(5), 19)
    out = triage.fit("CT/sim", [(i, _vals(v)) for i, v in enumerate(x)], "h")
    assert isinstance(out, str) and "too little history" in out and "19" in out


def test_models_file_round_trip_and_bad_file(tmp_path: Path,
                                             model: triage.TriageModel) -> None:
    path = tmp_path / triage.MODELS_FILE
    triage.save_models(path, [model])
    back = triage.load_models(path)["CT/sim"]
    x = _vals(_normal(np.random.default_rng(9), 1)[0])
    assert back.score(x).score == model.score(x).score
    path.write_text("{not json")
    with pytest.raises(InputError, match="not a triage model file"):
        triage.load_models(path)


def test_a_class_whose_values_do_not_vary_is_not_scored() -> None:
    """Most results alike (a count, a value the scanner reports rounded): FAST-MCD's
    support then has no spread at all; the class is not scored, with the reason, instead
    of failing the whole training (it stopped 'scanbench review train' and the
    programme demo)."""
    x = np.ones((30, 6))
    x[:4] += np.arange(1, 5)[:, None] * 0.1  # a few differ, the support does not
    out = triage.fit("PT/sim", [(i, _vals(v)) for i, v in enumerate(x)], "h")
    assert isinstance(out, str) and "not scored" in out and "PT/sim" in out
