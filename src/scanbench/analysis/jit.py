"""numba's ``njit`` as scanbench's compiled kernels use it: cached on disk, without the GIL.

The kernels (:mod:`scanbench.quality.ct_noise_kernel`,
:mod:`scanbench.analysis.ct.slice_kernels`) are compiled once per machine and numba
version and cached in the package's ``__pycache__``, numba's user-wide cache directory or
``NUMBA_CACHE_DIR``. Where none is writable numba refuses ``cache=True`` ("no locator
available"); a kernel is then compiled in each process that uses it, with a warning
naming ``NUMBA_CACHE_DIR``, rather than failing the import. Importing this module imports
numba (about 0.25 s).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numba


def cached_njit(what: str) -> Callable[[Callable[..., Any]], Any]:
    """A decorator compiling a function with ``numba.njit(cache=True, nogil=True)``, or
    without the cache (and a warning naming ``what``) where numba has no place for it."""

    def decorate(fn: Callable[..., Any]) -> Any:
        try:
            return numba.njit(cache=True, nogil=True)(fn)
        except RuntimeError as exc:  # "cannot cache function ...: no locator available"
            warnings.warn(f"{what} not cached ({exc}); set NUMBA_CACHE_DIR to a writable "
                          "directory", RuntimeWarning, stacklevel=2)
            return numba.njit(nogil=True)(fn)

    return decorate
