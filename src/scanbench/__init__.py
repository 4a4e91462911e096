"""scanbench: open, vendor-neutral evaluation of PET/CT, CT and MRI scanners."""

from __future__ import annotations

__version__ = "0.1.0"

from scanbench.api import analyze

__all__ = ["__version__", "analyze"]
