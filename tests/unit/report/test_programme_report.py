"""The multi-site evaluation report (report/programme_report.py): a constructed store of
three sites and seven devices of different makes, models, countries, field strengths and
axial fields of view, written through the real store functions; the report's numbers are
checked against values computed by hand from what was stored (one value per device);
grouping by every attribute; device names with markup come out as text; the PDF printed
by Chromium is read back with pdftotext; the API's rule (physicist or admin of every site
included; another site is 404, a site seen with a lower role 403)."""

from __future__ import annotations

import datetime as dt
import math
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from scipy import stats as sps
from typer.testing import CliRunner

from pg import pg_server  # noqa: F401  (fixture: a real PostgreSQL server)
from scanbench.evaluation import records
from scanbench.programme import compare as cmp
from scanbench.programme import sus
from scanbench.report import programme_report as pr
from scanbench.store import Database, devices, repo
from scanbench.store import models as m
from scanbench.types import DeviceIdentity, Limits, Result
from scanbench.web import audit, auth, sites
from scanbench.web.api import create_app

CLI = audit.Actor(None, "cli:test")
PW = "correct horse battery"
XSS = "<script>alert(1)</script>"
ANALYSIS = "mr.acr_geometry"
NAME = "diameter_error_mm"
SOURCE = "ACR MRI QC Manual 2015, geometric accuracy within ±2 mm"
FIRST, LAST = dt.date(2026, 1, 1), dt.date(2026, 1, 10)
# (site, make, model, serial, country, field strength T, axial FOV cm, base value mm)
DEVICES = [
    ("A", "Siemens", "Prisma", "s1", "Germany", 3.0, None, 0.2),
    ("A", "Siemens", "Prisma", "s2", "Germany", 3.0, None, 0.5),
    ("B", "Siemens", "Prisma", "s3", "Germany", 3.0, None, 0.3),
    ("A", "United Imaging", "uMR 790", "u1", "China", 3.0, None, 1.1),
    ("B", "United Imaging", "uMR 790", "u2", "China", 3.0, None, 1.4),
    ("B", "United Imaging", "uMR 580", "u3", "China", 1.5, None, 1.9),
    ("C", "GE", "SIGNA", "g1", "USA", 1.5, 25.0, 0.0),
]


def value(base: float, day: dt.date) -> float:
    """Each day's value: the device's base plus a fixed small pattern (mean 0 over the
    ten days) and 2.5 mm on the 5th (fails ±2 mm)."""
    if day.day == 5:
        return 2.5
    return base + ((day.day % 3) - 1) * 0.1


@dataclass
class Store:
    db: Database
    ids: dict[str, int]
    tmp: Path


def _build(db: Database) -> dict[str, int]:
    ids: dict[str, int] = {}
    with db.sessions() as s:
        site = {k: sites.add_site(s, CLI, f"Site {k}") for k in "ABC"}
        for k, v in site.items():
            ids[f"site_{k}"] = v.id
        ph = auth.add_user(s, CLI, "ph_ab", PW)
        auth.grant(s, CLI, ph, site["A"], "physicist")
        auth.grant(s, CLI, ph, site["B"], "admin")
        vi = auth.add_user(s, CLI, "vi_a", PW)
        auth.grant(s, CLI, vi, site["A"], "viewer")
        mixed = auth.add_user(s, CLI, "mixed", PW)
        auth.grant(s, CLI, mixed, site["A"], "physicist")
        auth.grant(s, CLI, mixed, site["B"], "technologist")
        for sk, make, model, serial, country, b0, fov, base in DEVICES:
            ident = DeviceIdentity(make, model, serial)
            dev = devices.register(s, ident, modality="MR")
            dev.site_id, dev.country_of_manufacture = site[sk].id, country
            dev.field_strength_t, dev.axial_fov_cm = b0, fov
            dev.display_name = f"{serial} {XSS}"
            s.flush()
            ids[serial] = dev.id
            for i in range((LAST - FIRST).days + 1):
                day = FIRST + dt.timedelta(days=i)
                r = Result(ANALYSIS, "ACR MRI QC Manual 2015", f"1.2.{dev.id}.{i}", ident,
                           dt.datetime.combine(day, dt.time(7)))
                lim = Limits(-2.0, 2.0, SOURCE, True)
                v = value(base, day)
                r.add(NAME, v, "mm", labels={"direction": "AP"}, limits=lim,
                      status=lim.check(v))
                repo.save_result(s, r, series_id=None, device_id=dev.id)
        # one device outside the period: not counted
        r = Result(ANALYSIS, "ACR MRI QC Manual 2015", "9.9", DeviceIdentity(
            "Siemens", "Prisma", "s1"), dt.datetime(2026, 2, 1, 7))
        r.add(NAME, 99.0, "mm", labels={"direction": "AP"})
        repo.save_result(s, r, series_id=None, device_id=ids["s1"])
        # reliability: one 10 h failure on s1 (in service from the installation)
        for kind, t in (("installation", dt.datetime(2025, 12, 1)),
                        ("downtime_start", dt.datetime(2026, 1, 3, 8)),
                        ("downtime_end", dt.datetime(2026, 1, 3, 18))):
            records.add_event(s, CLI, ids["s1"], kind, t)
        # stored scorecards (computed by evaluation.scorecard elsewhere; read here)
        spec = m.Spec(name="site-mr", version="1", yaml="name: site-mr")
        s.add(spec)
        s.flush()
        for serial, status, score, comp, end in (
                ("s1", "fail", 0.2, 0.4, dt.datetime(2026, 1, 5)),  # superseded by next
                ("s1", "pass", 0.9, 1.0, dt.datetime(2026, 1, 11)),
                ("s2", "fail", 0.5, 0.5, dt.datetime(2026, 1, 11)),
                ("s3", "pass", 1.0, 1.0, dt.datetime(2025, 12, 1))):  # before the period
            s.add(m.Scorecard(device_id=ids[serial], spec_id=spec.id, status=status,
                              score=score, compliance=comp, period_end=end,
                              period_start=end - dt.timedelta(days=30), data={}))
        for answers in ([5, 1, 5, 1, 5, 1, 5, 1, 5, 1], [4, 2, 4, 2, 4, 2, 4, 2, 4, 2]):
            sus.add_response(s, CLI, ids["u1"], "technologist", answers)
        s.commit()
    return ids


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    tmp = tmp_path_factory.mktemp("programme-report")
    db = Database(url=f"sqlite:///{tmp / 'scanbench.db'}")
    try:
        yield Store(db, _build(db), tmp)
    finally:
        db.close()


def _report(store: Store, group_by: str = "model", ids: list[int] | None = None
            ) -> pr.StoreReport:
    with store.db.sessions() as s:
        return pr.programme_report(s, FIRST, LAST, group_by=group_by, device_ids=ids)


def _table(report: pr.StoreReport, section: str, title: str) -> list[list[str]]:
    sec = next(x for x in report.sections if x.title.startswith(section))
    t = next(x for x in sec.tables if x.title == title)
    return [[c.text for c in r] for r in t.rows]


def _device_mean(base: float) -> float:
    days = [FIRST + dt.timedelta(days=i) for i in range(10)]
    return float(np.mean([value(base, d) for d in days]))


def test_numbers_equal_those_computed_from_the_store(store: Store) -> None:
    report = _report(store)
    rows = _table(report, "Measurements", "By model")
    by_group = {r[1]: r for r in rows}
    prisma = [_device_mean(b) for *_, b in DEVICES[:3]]
    row = by_group["Siemens Prisma"]
    assert row[0] == f"{ANALYSIS}: {NAME} (direction AP)"
    assert row[2] == "3" and row[3] == "30"  # 3 devices, 30 results (February left out)
    assert row[4] == f"{np.mean(prisma):.4g}"
    lo, hi = sps.t.interval(0.95, 2, loc=np.mean(prisma),
                            scale=np.std(prisma, ddof=1) / math.sqrt(3))
    assert row[5] == f"{lo:.4g} to {hi:.4g}"
    assert row[7] == "mm" and row[9] == "30"
    # pass rate: 27 of 30 pass (the 5th fails on each device)
    assert row[8] == "90 %"
    assert by_group["GE SIGNA"][2] == "1" and by_group["GE SIGNA"][5] == "—"
    # per site too
    site_rows = {r[1]: r for r in _table(report, "Measurements", "By site")}
    assert site_rows["Site A"][2] == "3" and site_rows["Site C"][2] == "1"


def test_comparison_is_the_compare_module_on_device_means(store: Store) -> None:
    report = _report(store, "make")
    sec = next(x for x in report.sections if x.title == "Comparison between groups (make)")
    (table,) = sec.tables
    assert table.title == f"{ANALYSIS}: {NAME} (direction AP)"
    rows = {r[0].text: [c.text for c in r[1:]] for r in table.rows}
    groups = {"GE": [_device_mean(DEVICES[6][-1])],
              "Siemens": [_device_mean(b) for *_, b in DEVICES[:3]],
              "United Imaging": [_device_mean(b) for *_, b in DEVICES[3:6]]}
    c = cmp.compare_groups(groups, "mm")
    assert c.test == "Welch's t-test (two-sided)"  # 3 devices each, Shapiro-Wilk passes
    assert rows["groups (devices)"][0] == "GE (n=1), Siemens (n=3), United Imaging (n=3)"
    assert rows["test"][0] == c.test
    assert rows["statistic, p"][0] == (f"t = {c.statistic:.4g}, df {c.df:.3g}; "
                                       f"p = {c.p:.3g}")
    assert rows[c.effect_name] == [f"{c.effect:.3g}",
                                   f"{c.effect_ci[0]:.4g} to {c.effect_ci[1]:.4g}"]
    assert rows[c.difference_name] == [
        f"{c.difference:.4g} mm", f"{c.difference_ci[0]:.4g} to {c.difference_ci[1]:.4g} mm"]
    assert rows[c.mdd_name][0] == f"{c.mdd:.4g} mm"
    assert table.notes == ["not tested (fewer than 2 devices): GE"]
    (fig,) = sec.figures  # the device means of each group as points
    assert {t.name: list(t.y) for t in fig.data} == groups


@pytest.mark.parametrize(("attribute", "groups"), [
    ("make", {"GE", "Siemens", "United Imaging"}),
    ("model", {"GE SIGNA", "Siemens Prisma", "United Imaging uMR 580",
               "United Imaging uMR 790"}),
    ("country", {"China", "Germany", "USA"}),
    ("field_strength", {"1.5 T", "3 T"}),
    ("axial_fov", {"25 cm", "no axial FOV"}),
    ("site", {"Site A", "Site B", "Site C"}),
])
def test_grouping_by_each_attribute(store: Store, attribute: str, groups: set[str]) -> None:
    report = _report(store, attribute)
    assert dict(report.meta)["Groups"] == ", ".join(sorted(groups))
    rows = _table(report, "Devices", "Devices in the report")
    assert {r[-1] for r in rows} == groups and len(rows) == 7


def test_reliability_sus_and_unknown_attribute(store: Store) -> None:
    report = _report(store)
    rel = {r[0]: r for r in _table(report, "Reliability", "Per device")}
    s1 = rel[f"s1 {XSS}"]
    # ten days = 240 h in service, one failure of 10 h: uptime 230/240, MTBF 230, MTTR 10
    assert s1[2] == f"{100 * 230 / 240:.4g}" and s1[3] == "230" and s1[4] == "10"
    cards = {r[0]: r for r in _table(report, "Scorecards", "Per group")}
    assert cards["Siemens Prisma"][1:] == ["2", "50 %", "75 %"]  # s1 pass 1.0, s2 fail 0.5
    assert set(cards) == {"Siemens Prisma"}
    sus_rows = {r[0]: r for r in _table(report, "Reader studies", "System Usability Scale "
                                                                  "by group")}
    assert sus_rows["United Imaging uMR 790"][1:3] == ["2", "87.5"]  # (100 + 75) / 2
    with store.db.sessions() as s, pytest.raises(pr.InputError, match="unknown attribute"):
        pr.programme_report(s, FIRST, LAST, group_by="colour")


def test_html_escapes_device_names_and_pdf_reads_back(store: Store) -> None:
    report = _report(store)
    html = pr.render_html(report)
    assert XSS not in html and "s1 &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "one value per device" in html
    from scanbench.report.pdf import find_chromium

    if shutil.which("pdftotext") is None or find_chromium() is None:
        pytest.skip("needs Chromium and pdftotext")
    out = pr.write(report, store.tmp / "programme.pdf")
    text = subprocess.run(["pdftotext", "-layout", str(out), "-"], capture_output=True,
                          text=True, check=True).stdout
    assert "Programme evaluation report" in text
    assert "Comparison between groups (model)" in text
    assert "Mann-Whitney U (two-sided)" in text  # Prisma (3) vs uMR 790 (2 devices)


def test_cli_writes_the_report(store: Store) -> None:
    from scanbench.report.cli import report_app

    out = store.tmp / "cli.html"
    url = f"sqlite:///{store.tmp / 'scanbench.db'}"
    r = CliRunner().invoke(report_app, ["programme", "-o", str(out), "--from", "2026-01-01",
                                        "--to", "2026-01-10", "--group-by", "country",
                                        "--database-url", url, "--site", "Site A"])
    assert r.exit_code == 0, r.output
    text = out.read_text()
    assert "Grouped by" in text and "country of manufacture" in text
    assert "Site B" not in text  # only site A's devices


def _login(client: TestClient, user: str) -> None:
    r = client.post("/api/v1/auth/login", json={"username": user, "password": PW})
    assert r.status_code == 200, r.text


def test_api_rule(store: Store) -> None:
    url = "/api/v1/programme/report?from=2026-01-01&to=2026-01-10&format=json"
    with TestClient(create_app(store.db)) as c:
        _login(c, "ph_ab")
        r = c.get(url)
        assert r.status_code == 200
        devices_ = next(x for x in r.json()["sections"] if x["title"] == "Devices")
        assert {row[1] for row in devices_["tables"][0]["rows"]} == {"Site A", "Site B"}
        assert c.get(url + f"&site={store.ids['site_C']}").status_code == 404
        r = c.get(url + f"&site={store.ids['site_B']}&group_by=field_strength")
        assert r.status_code == 200 and "Site A" not in r.text
        assert c.get(url.replace("json", "html")).headers["content-type"].startswith(
            "text/html")
        bad = c.get("/api/v1/programme/report?from=2026-02-01&to=2026-01-01")
        assert bad.status_code == 400 and "before it starts" in bad.json()["error"]
        assert c.get(url + "&group_by=colour").status_code == 422
    with TestClient(create_app(store.db)) as c:
        _login(c, "vi_a")
        assert c.get(url).status_code == 403  # a viewer: the route's rule
    with TestClient(create_app(store.db)) as c:
        _login(c, "mixed")
        assert c.get(url + f"&site={store.ids['site_B']}").status_code == 403
        r = c.get(url)  # by default only the site where the caller is physicist
        assert r.status_code == 200 and "Site B" not in r.text


def _all_tables(db: Database, group_by: str) -> list[tuple[str, list[list[str]]]]:
    with db.sessions() as s:
        report = pr.programme_report(s, FIRST, LAST, group_by=group_by)
    return [(t.title, [[c.text for c in row] for row in t.rows])
            for sec in report.sections for t in sec.tables]


def test_the_same_report_from_postgresql(store: Store, pg_server: Any) -> None:  # noqa: F811
    db = Database(url=pg_server.create())
    try:
        assert _build(db) == store.ids
        for group_by in ("make", "field_strength"):
            assert _all_tables(db, group_by) == _all_tables(store.db, group_by)
    finally:
        db.close()
