"""The figures of a result: drawn by the node's job from the analysis's evidence, stored
beside the file store, shown on the result page; a result whose files are gone says so."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from pages_world import XSS, analysed_node, give_site, signed_in
from scanbench.service import figures as figstore
from scanbench.store import Database
from scanbench.web.api import create_app


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    home = tmp_path_factory.mktemp("fig-home")
    rid = analysed_node(home, tmp_path_factory.mktemp("fig-phantom"), description=XSS)
    return home, rid


def test_the_job_stores_the_results_figures(node: tuple[Path, int]) -> None:
    home, rid = node
    path = figstore.path_for(home, rid)
    body = json.loads(gzip.decompress(path.read_bytes()))
    assert body["result_id"] == rid and body["analysis"] == "pet.calibration_uniformity"
    assert body["figures"], body.get("error")
    first = body["figures"][0]
    assert first["data"] and first["kind"] in ("image", "chart") and first["height"] > 0
    loaded = figstore.load(home, rid, body["series_uid"], body["analysis"])
    assert len(loaded.figures) == len(body["figures"]) and not loaded.note


def test_result_page_draws_from_the_stored_figures_and_says_when_files_are_gone(
        node: tuple[Path, int], tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(node[0], home)
    db = Database(url=f"sqlite:///{home / 'scanbench.db'}")
    try:
        give_site(db, "Site F", "fig_user", "viewer")
        client = signed_in(create_app(db), "fig_user")  # home found from the database path
        r = client.get(f"/results/{node[1]}")
        assert r.status_code == 200
        assert 'data-plot="fig-1"' in r.text and "no figures were stored" not in r.text
        assert "DICOM files are no longer" not in r.text
        shutil.rmtree(home / "files")
        figstore.path_for(home, node[1]).unlink()
        r = client.get(f"/results/{node[1]}")
        assert r.status_code == 200
        assert "DICOM files are no longer in this node" in r.text
        assert "no figures were stored for this result" in r.text
    finally:
        db.close()
