"""The evaluation layer: judging results against a spec (:mod:`.judge`), trends and
alerts, schedules and scorecards, the device's life, reliability and economics.

The package itself imports nothing heavy: its command-line modules are loaded for
``scanbench --help``, which must not pay for NumPy and the spec loader (issue 15). The
judging API is re-exported lazily from :mod:`scanbench.evaluation.judge`
(``from scanbench.evaluation import apply_spec`` keeps working, PEP 562).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scanbench.evaluation.judge import (
        Baseline,
        apply_spec,
        overall_status,
        summarise,
        unverified_warning,
    )

__all__ = ["Baseline", "apply_spec", "overall_status", "summarise", "unverified_warning"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("scanbench.evaluation.judge"), name)
    raise AttributeError(f"module 'scanbench.evaluation' has no attribute {name!r}")
