#!/usr/bin/env bash
# Set up and run every scanbench test on a fresh machine.
# Creates .venv (or $SCANBENCH_VENV) with scanbench and its test tools, installs the
# Debian programs the end-to-end tests drive (headless Chromium for the HTML/PDF
# report, poppler-utils to read the PDF back, dicom3tools to check the DICOM the virtual
# scanner writes, dcmtk as a real DICOM sender, Orthanc with its DICOMweb plugin as a
# real PACS, PostgreSQL as the shared database) when running as root, checks lint and types,
# then runs pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${SCANBENCH_VENV:-.venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]'

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v pdftoppm >/dev/null 2>&1 || need+=(poppler-utils)
command -v dciodvfy >/dev/null 2>&1 || need+=(dicom3tools)
command -v storescu >/dev/null 2>&1 || need+=(dcmtk)
command -v openssl >/dev/null 2>&1 || need+=(openssl)  # DICOM TLS tests: a throw-away CA
command -v Orthanc >/dev/null 2>&1 || need+=(orthanc)
[ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || need+=(orthanc-dicomweb)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${need[*]} from Debian ..."
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "note: ${need[*]} missing and not root: the browser/PDF report tests will be skipped" >&2
  fi
fi

"$venv/bin/ruff" check src tests bench
"$venv/bin/mypy"
exec "$venv/bin/python" -m pytest -q "$@"
