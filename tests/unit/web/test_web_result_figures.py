"""The figures of a result: drawn by the node's job from the analysis's evidence, stored
beside the file store, shown on the result page; a result whose files are gone says so."""

from __future__ import annotations

import gzip
import json
import re
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


def test_a_result_without_figures_gets_them_from_its_files_on_request(
        node: tuple[Path, int], tmp_path: Path) -> None:
    """As a node with SCANBENCH_JOB_FIGURES=0 leaves it: the page offers to draw them;
    the form needs the CSRF token; drawing runs the analysis again on the stored files,
    checks it gives the stored numbers and keeps the figures."""
    home = tmp_path / "home"
    shutil.copytree(node[0], home)
    figstore.path_for(home, node[1]).unlink()
    db = Database(url=f"sqlite:///{home / 'scanbench.db'}")
    try:
        give_site(db, "Site G", "fig_viewer", "viewer")
        client = signed_in(create_app(db), "fig_viewer")
        page = client.get(f"/results/{node[1]}")
        assert f'action="/results/{node[1]}/figures"' in page.text
        r = client.post(f"/results/{node[1]}/figures", follow_redirects=False)
        assert r.status_code == 403 and not figstore.path_for(home, node[1]).exists()
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token
        r = client.post(f"/results/{node[1]}/figures", data={"csrf_token": token.group(1)},
                        follow_redirects=False)
        assert r.status_code == 303, r.text
        page = client.get(f"/results/{node[1]}")
        assert 'data-plot="fig-1"' in page.text and "draw-figures" not in page.text
        body = json.loads(gzip.decompress(figstore.path_for(home, node[1]).read_bytes()))
        assert body["figures"] and not body.get("error")
    finally:
        db.close()


def test_figures_are_not_drawn_beside_numbers_the_analysis_no_longer_gives(
        node: tuple[Path, int], tmp_path: Path) -> None:
    from sqlalchemy import update

    from scanbench.store import models as m

    home = tmp_path / "home"
    shutil.copytree(node[0], home)
    figstore.path_for(home, node[1]).unlink()
    db = Database(url=f"sqlite:///{home / 'scanbench.db'}")
    try:
        with db.sessions() as s:  # as if an older scanbench had measured otherwise
            s.execute(update(m.Measurement).where(m.Measurement.result_id == node[1])
                      .values(value=m.Measurement.value * 1.01))
            s.commit()
        give_site(db, "Site H", "fig_viewer2", "viewer")
        client = signed_in(create_app(db), "fig_viewer2")
        page = client.get(f"/results/{node[1]}")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token
        r = client.post(f"/results/{node[1]}/figures", data={"csrf_token": token.group(1)})
        assert r.status_code == 200
        assert "gives other numbers than this stored result" in r.text
        assert 'data-plot="fig-1"' not in r.text
    finally:
        db.close()
