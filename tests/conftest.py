"""Shared fixtures. The real scanner data lives beside the repository in
``../shared/data`` (read-only; see its MANIFEST.md); SCANBENCH_SHARED_DATA overrides."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_data() -> Path:
    env = os.environ.get("SCANBENCH_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the real-data folder; a missing folder fails loudly rather than skipping."""
    root = _shared_data()
    if not (root / "MANIFEST.md").is_file():
        pytest.fail(f"real test data not found at {root} (set SCANBENCH_SHARED_DATA)")
    return root
