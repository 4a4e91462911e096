"""Triage benchmark (issue 14 "Must show"): does the learned model of normal behaviour
(scanbench.programme.triage: robust standardisation + minimum covariance determinant
Mahalanobis distance) put faulty results at the top of a reviewer's queue, compared
with ranking by single-measurement limit failures alone?

Simulated device class (CT constancy QC, 8 measurements of one result): CT numbers of
water, air, acrylic, polyethylene and bone, noise, uniformity and slice thickness.
Normal results vary through two shared causes and their own noise, as real QC does:
tube output / dose (noise and uniformity move together) and the scanner's CT number
calibration (all CT numbers move together), plus independent repeat noise of each
value (25 % of its variance). Limits: ±4 σ of each value's normal spread around its
nominal (a tolerance somewhat wider than the normal variation, as acceptance-derived
tolerances are); a value outside fails.

Faults (each in one result):
  (a) correlated small shifts: 3 of the 8 values shifted by 1.8 σ each with random
      signs — a drifting calibration of some inserts, a bad reconstruction kernel —
      that no single limit sees (each value stays inside ±4 σ unless noise adds);
  (b) gross single faults: one value shifted by 6 σ, which its limit fails.

A reviewer's day: 100 new results, 90 normal, 5 of fault (a), 5 of fault (b), in
random order. The model is trained on 300 earlier results of the class that passed
every limit (3 % of them carry an undetected fault (a): the training set is not
clean, as a fleet's history is not). Reported over 200 such days: precision (faults
in the top k / k) and recall (faults in the top k / 10 faults) at k = 5, 10, 20, and
recall of each fault type, for the model and for the baseline that ranks by the
number of failed limits (ties by the largest share of a tolerance used; then random).
For comparison only, scikit-learn's IsolationForest (200 trees, fixed seed) fitted on the
same robustly standardised training results: the alternative the issue names.

Run: .venv/bin/python bench/triage.py [days]
"""

from __future__ import annotations

import platform
import sys
import time

import numpy as np

from scanbench.programme import triage

NAMES = ["ct_water_hu", "ct_air_hu", "ct_acrylic_hu", "ct_polyethylene_hu", "ct_bone_hu",
         "noise_hu", "uniformity_hu", "slice_thickness_mm"]
NOMINAL = np.array([0.0, -1000.0, 120.0, -95.0, 900.0, 5.0, 0.0, 5.0])
SD = np.array([1.0, 3.0, 2.0, 2.0, 6.0, 0.2, 0.7, 0.1])
# loadings on (tube output, CT number calibration) in units of each value's σ; the rest
# of each value's variance (1 - sum of squares) is its own repeat noise
LOAD = np.array([[0.0, 0.86], [0.0, 0.86], [0.0, 0.86], [0.0, 0.86], [0.0, 0.86],
                 [0.86, 0.0], [0.6, 0.0], [0.0, 0.0]])
OWN = np.sqrt(np.clip(1 - (LOAD ** 2).sum(axis=1), 0.25, None))
LIMIT_SIGMA = 4.0
SHIFT_A, N_SHIFT_A, SHIFT_B = 1.8, 3, 6.0
KS = (5, 10, 20)


def normal(rng: np.random.Generator, n: int) -> np.ndarray:
    f = rng.standard_normal((n, 2))
    e = rng.standard_normal((n, len(NAMES))) * OWN
    z = f @ LOAD.T + e
    return NOMINAL + z * SD


def fault_a(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    idx = rng.choice(len(NAMES), N_SHIFT_A, replace=False)
    y = x.copy()
    y[idx] += rng.choice([-1.0, 1.0], N_SHIFT_A) * SHIFT_A * SD[idx]
    return y


def fault_b(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    i = rng.integers(len(NAMES))
    y = x.copy()
    y[i] += rng.choice([-1.0, 1.0]) * SHIFT_B * SD[i]
    return y


def limit_use(x: np.ndarray) -> np.ndarray:
    """|value - nominal| / half-width of the tolerance, per value."""
    return np.abs(x - NOMINAL) / (LIMIT_SIGMA * SD)


def as_values(x: np.ndarray) -> dict[triage.Key, float | None]:
    return {(n, "{}"): float(v) for n, v in zip(NAMES, x, strict=True)}


def train_model(rng: np.random.Generator) -> tuple[triage.TriageModel, np.ndarray]:
    hist = normal(rng, 300)
    bad = rng.random(300) < 0.03
    for i in np.flatnonzero(bad):
        hist[i] = fault_a(rng, hist[i])
    passed = [x for x in hist if (limit_use(x) <= 1).all()]
    mdl = triage.fit("CT/ct.constancy", [(i, as_values(x)) for i, x in enumerate(passed)],
                     "results with no failed limit")
    assert isinstance(mdl, triage.TriageModel), mdl
    return mdl, np.asarray(passed)


def day(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """100 results and their labels (0 normal, 1 fault a, 2 fault b)."""
    x = normal(rng, 100)
    labels = np.array([0] * 90 + [1] * 5 + [2] * 5)
    for i in range(90, 100):
        x[i] = fault_a(rng, x[i]) if labels[i] == 1 else fault_b(rng, x[i])
    order = rng.permutation(100)
    return x[order], labels[order]


def rank_model(mdl: triage.TriageModel, x: np.ndarray) -> np.ndarray:
    scores = np.array([mdl.score(as_values(r)).score for r in x], dtype=float)
    return np.argsort(-scores, kind="stable")


def fit_forest(mdl: triage.TriageModel, train: np.ndarray) -> tuple[object, np.ndarray,
                                                                      np.ndarray]:
    from sklearn.ensemble import IsolationForest

    med, sc = np.asarray(mdl.median), np.asarray(mdl.scale)
    forest = IsolationForest(n_estimators=200, random_state=0).fit((train - med) / sc)
    return forest, med, sc


def rank_forest(fitted: tuple[object, np.ndarray, np.ndarray], x: np.ndarray) -> np.ndarray:
    forest, med, sc = fitted
    scores = -forest.score_samples((x - med) / sc)  # type: ignore[attr-defined]
    return np.argsort(-scores, kind="stable")


def rank_limits(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    use = limit_use(x)
    fails = (use > 1).sum(axis=1)
    # lexsort: last key is primary
    return np.lexsort((rng.random(len(x)), -use.max(axis=1), -fails))


def evaluate(days: int, seed: int = 20261206) -> dict[str, dict[str, list[float]]]:
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, list[float]]] = {"model": {}, "limits": {}, "forest": {}}
    mdl = forest = None
    for d in range(days):
        if d % 50 == 0:  # retrained now and then on new history, as 'review train' is
            mdl, train = train_model(rng)
            forest = fit_forest(mdl, train)
        assert mdl is not None and forest is not None
        x, lab = day(rng)
        for name, order in (("model", rank_model(mdl, x)), ("limits", rank_limits(rng, x)),
                            ("forest", rank_forest(forest, x))):
            for k in KS:
                top = lab[order[:k]]
                out[name].setdefault(f"P@{k}", []).append(float((top > 0).sum()) / k)
                out[name].setdefault(f"R@{k}", []).append(float((top > 0).sum()) / 10)
                out[name].setdefault(f"Ra@{k}", []).append(float((top == 1).sum()) / 5)
                out[name].setdefault(f"Rb@{k}", []).append(float((top == 2).sum()) / 5)
    return out


def main() -> None:
    days = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    t0 = time.perf_counter()
    res = evaluate(days)
    secs = time.perf_counter() - t0
    print(f"{days} days of 100 results (90 normal, 5 correlated small shifts (a), "
          f"5 gross single faults (b)); mean over days")
    print("| ranking | k | precision | recall (all) | recall (a) | recall (b) |")
    print("|---|---|---|---|---|---|")
    label = {"model": "triage model (MCD)", "limits": "limit failures",
             "forest": "IsolationForest (comparison)"}
    for name in ("model", "limits", "forest"):
        for k in KS:
            r = res[name]
            print(f"| {label[name]} | {k} | "
                  f"{np.mean(r[f'P@{k}']):.2f} | {np.mean(r[f'R@{k}']):.2f} | "
                  f"{np.mean(r[f'Ra@{k}']):.2f} | {np.mean(r[f'Rb@{k}']):.2f} |")
    print(f"({secs:.1f} s on {platform.machine()}, Python {platform.python_version()})")


if __name__ == "__main__":
    main()
