#!/usr/bin/env bash
# Set up scanbench and run its demo on a fresh machine: a virtual fleet of PET/CT, CT and
# MRI scanners at three hospitals, a year of QC and a few hundred clinical exams written
# as DICOM by the virtual scanners and fed through the node's ingest path, evaluated
# (specs per device class, alerts, scorecards, lifecycle, magnet telemetry, costs); then
# the web application on http://localhost:8000/ with the demo logins it prints.
# Arguments go to `scanbench demo` (e.g. --home DIR, --port 0, --no-serve);
# `scanbench demo --phantom-report --out DIR` writes the phantom analyses' report instead.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${SCANBENCH_VENV:-.venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -e .
exec "$venv/bin/scanbench" demo "$@"
