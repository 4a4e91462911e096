"""Shared fixtures. The real scanner data lives beside the repository in
``../shared/data`` (read-only; see its MANIFEST.md); SCANBENCH_SHARED_DATA overrides."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: dcmtk programs the tests run by name; pynetdicom installs Python scripts of the same
#: names (with other options) in the virtual environment's bin folder
DCMTK_PROGRAMS = ("echoscu", "storescu", "findscu", "movescu", "getscu", "storescp")


def _is_python_script(path: str) -> bool:
    with open(path, "rb") as f:
        return b"python" in f.readline()


def pytest_configure(config: pytest.Config) -> None:
    """With the virtual environment activated, its bin folder comes first on PATH and
    ``storescu`` there is pynetdicom's, which knows none of dcmtk's options (``-R``,
    ``+tls``, ...); the tests mean dcmtk's. Where a name resolves to such a script, a
    folder of links to dcmtk's programs goes first on PATH for this run."""
    shadowed = [n for n in DCMTK_PROGRAMS
                if (w := shutil.which(n)) is not None and _is_python_script(w)]
    if not shadowed:
        return
    links = Path(tempfile.mkdtemp(prefix="sb-dcmtk-"))
    for name in shadowed:
        for folder in os.environ.get("PATH", "").split(os.pathsep):
            cand = Path(folder) / name
            if cand.is_file() and os.access(cand, os.X_OK) and not _is_python_script(
                    str(cand)):
                (links / name).symlink_to(cand)
                break
    os.environ["PATH"] = f"{links}{os.pathsep}{os.environ['PATH']}"


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


#: The fleet demo as the tests run it: the shortest period the scenario allows (the
#: drift, the failure and repair, the upgrade all happen in it), a fixed end so the
#: simulated values are the same every day, no periodic phantoms, few exams.
DEMO_ARGS = ["--days", "70", "--end", "2026-09-30", "--no-periodic", "--exams", "10",
             "--workers", "2"]


@pytest.fixture(scope="session")
def demo_fleet_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ``scanbench demo --no-serve`` run shared by every test that looks at the demo
    fleet (tests/e2e/test_demo_fleet.py, tests/web/test_demo_browser.py): it takes
    minutes, so it runs once. ``SCANBENCH_TEST_DEMO_HOME`` names a home already prepared
    by exactly this command, reused as it is."""
    import subprocess
    import sys

    reuse = os.environ.get("SCANBENCH_TEST_DEMO_HOME")
    if reuse:
        return Path(reuse)
    home = tmp_path_factory.mktemp("demo-fleet") / "home"
    proc = subprocess.run([sys.executable, "-m", "scanbench", "demo", "--home", str(home),
                           "--no-serve", *DEMO_ARGS],
                          capture_output=True, text=True, timeout=1800,
                          env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr[-4000:] + proc.stdout[-2000:]
    assert "demo logins" in proc.stdout and "demo-physicist-pass" in proc.stdout
    return home
