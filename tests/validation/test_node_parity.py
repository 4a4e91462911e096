"""Node parity on every real data set: the measurements the node stores (files stored by
``Pipeline`` as ``scanbench ingest`` does, jobs run, read back from the database) equal
those of ``scanbench analyze`` (``api.analyze_paths``) on the same files: same analyses,
series, names, labels, units, statuses and notes, values to 1e-9 (DESIGN: one path from
DICOM to results).

Each data set is ingested in units: the folders of one study together (an ACR axial
series with its localiser), except folders whose series share a Series Instance UID
(the hazen ``Siemens`` and ``Siemens2`` sets are two exports of one series with
different instances: one node would rightly file them as one series)."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from node_results import analyze_rows, assert_same, dicom_files, stored_rows
from scanbench.api import analyze_paths
from scanbench.service.jobs import InlineExecutor
from scanbench.service.pipeline import Pipeline

DATA_SETS = ("mr/acr", "mr/magnet", "ct/catphan", "ct/catphan-cbct-xvi",
             "ct/catphan-ctp515-canon", "pet/uniform-cylinder-mct", "pet/nema-iq-test-recon")


def _units(root: Path) -> list[list[Path]]:
    """Leaf folders of ``root`` grouped by study, never two folders sharing a series UID."""
    leaves: list[tuple[Path, str, set[str]]] = []
    for folder in sorted({f.parent for f in dicom_files(root)}):
        files = [f for f in folder.iterdir() if f.is_file() and f.suffix not in (".json", ".md")]
        heads = [pydicom.dcmread(f, stop_before_pixels=True, force=True) for f in files]
        studies = {str(getattr(h, "StudyInstanceUID", "")) for h in heads}
        series = {str(getattr(h, "SeriesInstanceUID", "")) for h in heads}
        leaves.append((folder, min(studies), series))
    units: list[tuple[str, set[str], list[Path]]] = []
    for folder, study, series in leaves:
        for u in units:
            if u[0] == study and not (u[1] & series):
                u[1].update(series)
                u[2].append(folder)
                break
        else:
            units.append((study, set(series), [folder]))
    return [u[2] for u in units]


@pytest.fixture(scope="module")
def parity(shared_data: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> list[tuple[str, dict, dict, list[str]]]:
    out = []
    for name in DATA_SETS:
        for k, folders in enumerate(_units(shared_data / name)):
            home = tmp_path_factory.mktemp("node")
            pipe = Pipeline(home / "home", f"sqlite:///{home / 'db.sqlite'}", quiet_seconds=5.0,
                            executor=InlineExecutor())
            try:
                for f in dicom_files(*folders):
                    pipe.store_path(f)
                pipe.drain(timeout=900)
                with pipe.db.session() as s:
                    stored = stored_rows(s)
                errors = [j.error or "" for j in pipe.jobs() if j.state == "failed"]
            finally:
                pipe.close()
            report = analyze_paths(folders)
            label = f"{name} #{k}: " + ", ".join(f.name for f in folders)
            out.append((label, stored, analyze_rows(report.results), errors))
    return out


def test_every_real_data_set_gives_the_same_measurements_via_the_node(
        parity: list[tuple[str, dict, dict, list[str]]]) -> None:
    with_results = [label for label, _, analysed, _ in parity if analysed]
    # Every ACR MRI series (13 axial sets and the two localisers), the MagNET sets, the
    # CatPhan modules and the IEC phantom reconstructions give results.
    assert len(with_results) >= 20, with_results
    for label, stored, analysed, _errors in parity:
        assert_same(stored, analysed, label)


def test_the_acr_suite_is_complete_via_the_node(
        parity: list[tuple[str, dict, dict, list[str]]]) -> None:
    acr = {}
    for label, stored, _, _ in parity:
        if label.startswith("mr/acr"):
            for key in stored:
                acr.setdefault(key[0], set()).add(key[1])
    full = [uid for uid, analyses in acr.items() if len(analyses) >= 6]
    assert len(full) >= 12, {k: sorted(v) for k, v in acr.items()}
