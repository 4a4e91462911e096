"""Automatic triage of QC results for expert review (issue 14 §3): a learned model of a
device class's normal behaviour over all measurements of a result together.

Method
------
A *device class* is the modality and the analysis (``CT/ct.acr_464``): results of one
analysis on one kind of scanner measure the same quantities. Each result is a vector
of its measurements, one feature per (name, labels) that is present in at least
:data:`MIN_PRESENT` of the training results.

1. **Robust standardisation**: each feature is centred on its training median and
   scaled by its normalised median absolute deviation (MAD × 1.4826, a consistent
   estimator of the standard deviation under normality; Rousseeuw & Croux 1993), so a
   few faulty training results do not set the scale.
2. **Robust covariance**: the Minimum Covariance Determinant estimator (Rousseeuw 1984;
   FAST-MCD, Rousseeuw & Van Driessen 1999, :class:`sklearn.covariance.MinCovDet`) of
   the standardised vectors — the location and covariance of the most concentrated
   ``support_fraction`` of them, so the model learns how the measurements move
   *together* (e.g. noise and uniformity rising with a weaker source) and is not pulled
   by outliers in its training set.
3. **Score** of a result: its robust Mahalanobis distance ``sqrt(d²)`` from that
   location (higher = more unusual). For normal data d² follows approximately a χ² law
   with p degrees of freedom; the score's ``p_value`` (χ² tail) is given for reading,
   not used for ranking.
4. **Drivers**: for each measurement the drop in d² when that one value is replaced by
   the training median (its standardised value set to 0), with its standardised
   residual ``z`` (robust: (value − median) / scaled MAD). The measurements with the
   largest drops drove the score. A drop can exceed d² only by correlation effects; it
   is reported as computed.

Missing values: a feature the result lacks is imputed with the training median
(standardised 0), which adds nothing to d², and is listed as ``missing``. A result
missing more than half of the class's features is not scored.

Training set: the class's results whose expert review was **accepted**; when the class
has fewer than :data:`MIN_TRAIN` accepted results, every current (not superseded)
result none of whose measurements failed a limit (status ``fail``) and that was not
rejected by a reviewer. The model says which (``trained_on``). With fewer than
``max(MIN_TRAIN, 2 (p + 1))`` training results the class is **not scored** ("too little
history"): no score is invented.

Versioned: a model's ``version`` is the algorithm version, the class, and the first 12
hex digits of the SHA-256 of its training result ids; a review keeps the version that
scored it (``Review.triage_model``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from scanbench.errors import InputError

ALGORITHM = "mcd-1"
#: Fewest training results a class needs (and at least 2 (p + 1) for p features, so the
#: MCD's covariance of p features rests on a support of more than p results).
MIN_TRAIN = 20
#: A feature enters a class's model when at least this fraction of training results has it.
MIN_PRESENT = 0.8
#: Share of training results the MCD location and covariance rest on (scikit-learn's
#: default is (n + p + 1) / 2n, the highest breakdown; 0.75 is the usual compromise of
#: breakdown and efficiency, Rousseeuw & Van Driessen 1999).
SUPPORT_FRACTION = 0.75
MAD_SCALE = 1.4826
#: A feature whose training values do not vary (MAD 0) is scaled by this fraction of its
#: median's size (or 1e-9 absolute) so that any departure is large but finite.
FLAT_SCALE = 1e-3

Key = tuple[str, str]  # (measurement name, labels as canonical JSON)


def labels_key(labels: Mapping[str, Any] | None) -> str:
    return json.dumps(dict(labels or {}), sort_keys=True, separators=(",", ":"))


def feature_label(key: Key) -> str:
    name, labels = key
    return name if labels in ("", "{}") else f"{name} {labels}"


@dataclass
class Scored:
    """The triage of one result: ``score`` None when not scored, with ``reason``."""

    score: float | None
    drivers: list[dict[str, Any]] = field(default_factory=list)
    model: str | None = None
    reason: str = ""
    p_value: float | None = None


@dataclass
class TriageModel:
    """A fitted model of one device class (see the module docstring)."""

    device_class: str
    features: list[Key]
    median: list[float]
    scale: list[float]
    location: list[float]
    precision: list[list[float]]
    n_train: int
    trained_on: str
    version: str
    trained_at: str
    units: dict[str, str] = field(default_factory=dict)

    # ------------------------------------------------------------ scoring

    def standardise(self, values: Mapping[Key, float | None]) -> tuple[NDArray[np.float64],
                                                                         list[Key]]:
        med = np.asarray(self.median)
        sc = np.asarray(self.scale)
        x = np.zeros(len(self.features))
        missing = []
        for i, k in enumerate(self.features):
            v = values.get(k)
            if v is None or not math.isfinite(v):
                missing.append(k)
                continue
            x[i] = (v - med[i]) / sc[i]
        return x, missing

    def d2(self, z: NDArray[np.float64]) -> float:
        r = z - np.asarray(self.location)
        return float(r @ np.asarray(self.precision) @ r)

    def score(self, values: Mapping[Key, float | None], top: int = 5) -> Scored:
        """Score one result's measurements ``{(name, labels_key): value}``."""
        z, missing = self.standardise(values)
        if len(missing) * 2 > len(self.features):
            return Scored(None, model=self.version,
                          reason=f"not scored: {len(missing)} of the class's "
                                 f"{len(self.features)} measurements are missing")
        d2 = self.d2(z)
        drops = []
        for i, k in enumerate(self.features):
            if k in missing:
                continue
            zi = z.copy()
            zi[i] = 0.0
            drops.append((d2 - self.d2(zi), i))
        drops.sort(reverse=True)
        drivers = [{"name": self.features[i][0], "labels": json.loads(self.features[i][1]),
                    "z": round(float(z[i]), 3), "contribution": round(float(drop), 3),
                    "value": values.get(self.features[i]),
                    "median": self.median[i],
                    "unit": self.units.get(feature_label(self.features[i]), "")}
                   for drop, i in drops[:top]]
        for k in missing:
            drivers.append({"name": k[0], "labels": json.loads(k[1]), "missing": True})
        p = float(stats.chi2.sf(d2, len(self.features)))
        return Scored(round(math.sqrt(max(d2, 0.0)), 4), drivers, self.version, "", p)

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["features"] = [list(k) for k in self.features]
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TriageModel:
        d = dict(data)
        d["features"] = [(str(a), str(b)) for a, b in d["features"]]
        return cls(**d)


def fit(device_class: str, training: Sequence[tuple[int, Mapping[Key, float | None]]],
        trained_on: str, units: Mapping[str, str] | None = None,
        random_state: int = 0) -> TriageModel | str:
    """Fit the model of one class on ``training`` ((result id, values) pairs). Returns the
    model, or the reason it was not fitted (too little history)."""
    from sklearn.covariance import MinCovDet

    n = len(training)
    if n < MIN_TRAIN:
        return (f"not scored, too little history: {n} training result(s) of "
                f"{device_class}, {MIN_TRAIN} needed")
    counts: dict[Key, int] = {}
    for _rid, vals in training:
        for k, v in vals.items():
            if v is not None and math.isfinite(v):
                counts[k] = counts.get(k, 0) + 1
    features = sorted(k for k, c in counts.items() if c >= MIN_PRESENT * n)
    if not features:
        return f"not scored: no measurement present in most results of {device_class}"
    p = len(features)
    if n < 2 * (p + 1):
        return (f"not scored, too little history: {n} training results of {device_class} "
                f"for {p} measurements ({2 * (p + 1)} needed)")
    raw = np.full((n, p), np.nan)
    for r, (_rid, vals) in enumerate(training):
        for c, k in enumerate(features):
            v = vals.get(k)
            if v is not None and math.isfinite(v):
                raw[r, c] = v
    med = np.nanmedian(raw, axis=0)
    mad = np.nanmedian(np.abs(raw - med), axis=0) * MAD_SCALE
    flat = mad <= 0
    mad[flat] = np.maximum(np.abs(med[flat]) * FLAT_SCALE, 1e-9)
    z = (raw - med) / mad
    z[np.isnan(z)] = 0.0  # missing: at the median
    try:
        mcd = MinCovDet(support_fraction=SUPPORT_FRACTION, random_state=random_state).fit(z)
    except ValueError as exc:  # the support's covariance is 0: most results alike
        return (f"not scored: the values of {device_class} hardly vary in its {n} "
                f"training results (FAST-MCD: {exc})")
    # a singular covariance (perfectly collinear features) gets a pseudo-inverse
    prec = np.linalg.pinv(mcd.covariance_)
    ids = ",".join(str(rid) for rid, _ in sorted(training, key=lambda t: t[0]))
    digest = hashlib.sha256(f"{device_class}|{','.join(map(feature_label, features))}|"
                            f"{ids}".encode()).hexdigest()[:12]
    return TriageModel(device_class=device_class, features=features,
                       median=[float(v) for v in med], scale=[float(v) for v in mad],
                       location=[float(v) for v in mcd.location_],
                       precision=[[float(v) for v in row] for row in prec], n_train=n,
                       trained_on=trained_on, version=f"{ALGORITHM}:{device_class}:{digest}",
                       trained_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                       units=dict(units or {}))


# --------------------------------------------------------------------------- persistence

MODELS_FILE = "triage-models.json"


def models_path(home: Path) -> Path:
    return home / MODELS_FILE


def save_models(path: Path, models: Iterable[TriageModel]) -> None:
    """Write the models (one per class; the newest replaces a class's older one)."""
    known = load_models(path) if path.exists() else {}
    for mdl in models:
        known[mdl.device_class] = mdl
    tmp = path.with_suffix(".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(json.dumps({"algorithm": ALGORITHM,
                               "models": [m.to_json() for m in known.values()]}, indent=1))
    tmp.replace(path)


def load_models(path: Path) -> dict[str, TriageModel]:
    """The stored models by class ({} when none were trained yet)."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        return {d["device_class"]: TriageModel.from_json(d) for d in data["models"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a triage model file ({exc}); retrain with "
                         "'scanbench review train'") from None
