#!/usr/bin/env bash
# Set up scanbench and run its demo on a fresh machine: the virtual PET scanner writes
# a NEMA image-quality scan, point sources and a uniform cylinder as DICOM with their
# ground truth; scanbench analyses them and writes scanbench-demo/report.html.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${SCANBENCH_VENV:-.venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -e .
exec "$venv/bin/scanbench" demo --out "${1:-scanbench-demo}"
