"""scanbench: open, vendor-neutral evaluation of PET/CT, CT and MRI scanners."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

if TYPE_CHECKING:
    from scanbench.api import analyze

__all__ = ["__version__", "analyze"]


def __getattr__(name: str) -> Any:
    # ``scanbench.analyze`` is imported on first use (PEP 562): ``import scanbench``, and
    # every command that never analyses (``scanbench --help``, ``node``), then pays for
    # no numpy or pydicom (issue 15).
    if name == "analyze":
        from scanbench.api import analyze

        return analyze
    raise AttributeError(f"module 'scanbench' has no attribute {name!r}")
