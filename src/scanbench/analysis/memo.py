"""A per-series memo of derived data, so that detection and analysis share work.

``registry.choose`` asks every analysis whether a series is its phantom, then
runs the chosen one; what a detection computed (a phantom location, a summary
of the volume) is kept in ``Series.derived`` and reused instead of computed
again. Values are returned as stored: callers must not mutate them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np

from scanbench.types import Series

T = TypeVar("T")


def memo(series: Series, key: str, compute: Callable[[], T]) -> T:
    """``compute()`` once per series and ``key``.

    An entry is trusted only while ``series.voxels`` is the array it was
    computed from (voxels are never changed in place after reading; a series
    given new voxels gets new entries).
    """
    entry = series.derived.get(key)
    if entry is not None and entry[0] is series.voxels:
        return entry[1]
    value = compute()
    series.derived[key] = (series.voxels, value)
    return value


def voxel_max(series: Series) -> float:
    """The largest voxel value (NaN-propagating, like ``ndarray.max``)."""
    return memo(series, "voxel_max", lambda: float(np.asarray(series.voxels).max()))
