"""Reports from the store (issue 12 §4): a constructed store, written through the real
store functions, and the device QC, acceptance and site dose reports read from it. The
numbers the reports print are checked against values computed by hand from what was
stored; device names, comments and protocols with markup come out as text; the PDF is
printed by Chromium and read back with pdftotext; the API serves the reports through the
caller's scope (another site's device or site is 404)."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from pg import pg_server  # noqa: F401  (fixture: a real PostgreSQL server)
from scanbench.evaluation import assign, scorecard
from scanbench.report import store_reports as sr
from scanbench.store import Database, devices, repo
from scanbench.store import models as m
from scanbench.types import DeviceIdentity, Limits, Result
from scanbench.web import audit, auth, sites
from scanbench.web.api import create_app

CLI = audit.Actor(None, "cli:test")
PW = "correct horse battery"
XSS = "<script>alert(1)</script>"
ANALYSIS = "pet.calibration_uniformity"
NAME = "activity_concentration_bias_percent"
SOURCE = "site spec: calibration bias within ±5 % (test)"
FIRST = dt.date(2026, 1, 10)
LAST = dt.date(2026, 4, 30)


def bias(day: dt.date) -> float:
    """The stored bias of each day: a small pattern, 7.25 % on 15 March (fails ±5 %) and
    6.5 % on 15 January (fails ±5 %, passes EARL's ±10 %)."""
    if day == dt.date(2026, 3, 15):
        return 7.25
    if day == dt.date(2026, 1, 15):
        return 6.5
    return round(((day.toordinal() % 9) - 4) * 0.5, 2)


@dataclass
class Store:
    db: Database
    ids: dict[str, int]
    tmp: Path


def _days(a: dt.date, b: dt.date) -> list[dt.date]:
    return [a + dt.timedelta(days=i) for i in range((b - a).days + 1)]


def _build(db: Database) -> dict[str, int]:
    ids: dict[str, int] = {}
    with db.sessions() as s:
        a = sites.add_site(s, CLI, "Site A")
        b = sites.add_site(s, CLI, "Site B")
        ids["site_a"], ids["site_b"] = a.id, b.id
        ph = auth.add_user(s, CLI, "ph_a", PW)
        auth.grant(s, CLI, ph, a, "physicist")
        auth.grant(s, CLI, auth.add_user(s, CLI, "vi_b", PW), b, "viewer")
        ident = DeviceIdentity("Siemens", "Biograph mCT", "111", XSS, "VG80")
        dev = devices.register(s, ident, modality="PT")
        dev.site_id, dev.display_name = a.id, f"PET 1 {XSS}"
        other = devices.register(s, DeviceIdentity("GE", "Discovery MI", "222"), modality="PT")
        other.site_id = b.id
        study = m.Study(study_uid="1.2.3", site_id=a.id)
        s.add(study)
        s.flush()
        for day in _days(FIRST, LAST):
            uid = f"1.2.3.{day.toordinal()}"
            ser = m.Series(series_uid=uid, study_id=study.id, device_id=dev.id,
                           modality="PT", state="done",
                           acquired_at=dt.datetime.combine(day, dt.time(8, 30)))
            s.add(ser)
            s.flush()
            r = Result(ANALYSIS, "NEMA NU 2-2018 section 7.4.1", uid, ident,
                       dt.datetime.combine(day, dt.time(8, 30)), spec="site-calibration")
            lim = Limits(-5.0, 5.0, SOURCE, True)
            r.add(NAME, bias(day), "%", limits=lim, status=lim.check(bias(day)))
            row = repo.save_result(s, r, series_id=ser.id, device_id=dev.id)
            if day == dt.date(2026, 3, 15):
                ids["failed_result"] = row.id
        when = dt.datetime
        for kind, t, planned in (("installation", when(2026, 1, 5, 8), False),
                                 ("acceptance", when(2026, 1, 20, 12), False),
                                 ("downtime_start", when(2026, 3, 10, 8), False),
                                 ("downtime_end", when(2026, 3, 10, 20), False),
                                 ("downtime_start", when(2026, 4, 1, 0), False),
                                 ("downtime_end", when(2026, 4, 2, 0), False),
                                 ("downtime_start", when(2026, 4, 20, 8), True),
                                 ("downtime_end", when(2026, 4, 20, 10), False)):
            s.add(m.LifecycleEvent(device_id=dev.id, kind=kind, occurred_at=t,
                                   planned=planned, summary=f"{kind} {XSS}"))
        s.add(m.Alert(key="k1", device_id=dev.id, analysis=ANALYSIS, name=NAME, rule="limit",
                      level="action", direction="high", result_id=ids["failed_result"],
                      occurred_at=when(2026, 3, 15, 8, 30), value=7.25, unit="%",
                      limit_source=SOURCE, message="bias 7.25 % above the action limit 5 %",
                      state="acknowledged", ack_user_id=ph.id,
                      ack_at=when(2026, 3, 15, 10, tzinfo=dt.UTC),
                      ack_comment=f"dose calibrator checked again {XSS}"))
        # Dose: CT events of two protocols; lumbar spine matches the Guangzhou table's
        # description pattern (DRL CTDIvol 23.1 mGy, DLP 522 mGy·cm).
        dstudy = m.Study(study_uid="9.9", site_id=a.id)
        s.add(dstudy)
        s.flush()
        for i, (protocol, ctdi, dlp) in enumerate(
                [(f"Lumbar spine {XSS}", 5.0, 200.0), (f"Lumbar spine {XSS}", 7.0, 250.0),
                 (f"Lumbar spine {XSS}", 9.0, 300.0), (f"Lumbar spine {XSS}", 20.0, 700.0),
                 ("L-spine high", 30.0, 900.0), ("L-spine high", 32.0, 950.0),
                 ("L-spine high", 34.0, 1000.0)]):
            s.add(m.DoseEvent(study_id=dstudy.id, device_id=dev.id, kind="ct",
                              occurred_at=when(2026, 2, 1 + i, 10), protocol=protocol,
                              ctdivol_mgy=ctdi, dlp_mgycm=dlp))
        s.add(m.DoseEvent(study_id=dstudy.id, device_id=other.id, kind="ct",
                          occurred_at=when(2026, 2, 1, 10), protocol="other site's",
                          ctdivol_mgy=99.0))
        # EARL calibration QC (quarterly, bias within ±10 %) assigned to device A from
        # the start of the year: the scorecard judges the stored values again by it.
        assign.assign(s, CLI, "earl-calibration", assign.DeviceClassCriteria(device_id=dev.id),
                      valid_from=when(2026, 1, 1, tzinfo=dt.UTC))
        s.commit()
        # the period's scorecard, stored as the node or `scanbench scorecard` stores it:
        # a report only reads stored scorecards
        zone = assign.site_zone(s, dev)
        scorecard.compute_scorecards(s, dev.id, assign.to_utc(when(2026, 3, 1), zone),
                                     assign.to_utc(when(2026, 5, 1), zone))
        s.commit()
        ids["device_a"], ids["device_b"] = dev.id, other.id
    return ids


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    tmp = tmp_path_factory.mktemp("store-reports")
    db = Database(url=f"sqlite:///{tmp / 'scanbench.db'}")
    try:
        yield Store(db, _build(db), tmp)
    finally:
        db.close()


def _section(report: sr.StoreReport, title: str) -> sr.RSection:
    return next(s for s in report.sections if s.title == title)


def _device_report(store: Store) -> sr.StoreReport:
    with store.db.sessions() as s:
        device = s.get_one(m.Device, store.ids["device_a"])
        before = s.scalar(select(func.count()).select_from(m.Scorecard))
        report = sr.device_report(s, device, dt.date(2026, 3, 1), dt.date(2026, 4, 30))
        s.commit()  # as the API and the command line do
        # viewing never writes: a report adds no scorecard row
        assert s.scalar(select(func.count()).select_from(m.Scorecard)) == before
        return report


def test_device_report_holds_the_stored_numbers(store: Store) -> None:
    report = _device_report(store)
    period = _days(dt.date(2026, 3, 1), dt.date(2026, 4, 30))
    assert dict(report.meta)["Results"] == str(len(period)) == "61"
    qc = _section(report, "QC results in the period")
    summary = next(t for t in qc.tables if t.title.endswith("measurements"))
    (row,) = summary.rows
    values = [bias(d) for d in period]
    texts = [c.text for c in row]
    assert texts[0] == NAME and texts[2] == "61"
    assert texts[3] == f"{bias(dt.date(2026, 4, 30)):g} %"  # the latest value
    assert texts[4] == f"{min(values):g} %" and texts[5] == "7.25 %"
    assert texts[6] == "-5 – 5" and texts[7] == SOURCE
    assert texts[8] == str(sum(1 for v in values if -5 <= v <= 5)) and texts[9] == "1"
    listing = next(t for t in qc.tables if t.title.endswith("results"))
    failed = [r for r in listing.rows if r[-1].status == "fail"]
    assert [(r[0].text, r[1].text, r[2].text) for r in failed] == [
        ("2026-03-15 08:30", str(store.ids["failed_result"]), "7.25 %")]
    assert listing.head[2] == NAME and "judged when stored by site-calibration" in listing.clause
    assert [r[2].text for r in listing.rows] == [f"{v:g} %" for v in values]
    # Reliability from the lifecycle log, by hand: in service 1 March – 1 May = 1464 h;
    # unplanned downtimes 12 h and 24 h (2 failures), planned 2 h.
    rel = dict(_section(report, "Lifecycle and reliability").meta)
    assert rel["In service"] == "1464 h"
    assert rel["Unplanned downtime"] == "36 h" and rel["Planned downtime"] == "2 h"
    assert rel["Up time"] == "1426 h"  # 1464 − 36 − 2
    assert rel["MTBF"] == "713 h"  # 1426 / 2
    assert rel["MTTR"] == "18 h"  # (12 + 24) / 2
    assert rel["Availability"] == f"{100 * 713 / (713 + 18):.4g} %"
    assert rel["Uptime (staffed hours)"] == f"{100 * (1464 - 36) / 1464:.4g} %"
    # The scorecard of the period, as stored (judged by EARL's ±10 %: 7.25 % passes).
    score = _section(report, "Specification and scorecard")
    assert dict(score.meta)["Spec in force"].startswith("earl-calibration version")
    with store.db.sessions() as s:
        cards = s.scalars(select(m.Scorecard).where(
            m.Scorecard.device_id == store.ids["device_a"])).all()
        result_ids = s.scalars(select(m.Result.id).where(
            m.Result.acquired_at >= dt.datetime(2026, 3, 1)).order_by(m.Result.id)).all()
    (card,) = cards
    (crow,) = score.tables[0].rows
    assert [c.text for c in crow[:5]] == [
        "earl-calibration", card.data["spec"]["version"], "2026-03-01 00:00 – 2026-05-01 00:00",
        sr.format_number(card.score), {"pass": "pass"}.get(card.status, card.status)]
    (trow,) = score.tables[1].rows
    assert trow[0].text == ANALYSIS and trow[2].status == "passed"
    assert trow[4].text == ", ".join(str(i) for i in result_ids)
    alerts = _section(report, "Alerts")
    (arow,) = alerts.tables[0].rows
    assert arow[3].text == "7.25 %" and arow[5].status == "acknowledged"
    assert arow[6].text.startswith(
        "acknowledged by ph_a, 2026-03-15 10:00 UTC: dose calibrator checked again")
    charts = _section(report, "Control charts")
    assert len(charts.figures) == 1
    traces = {tr.name: tr for tr in charts.figures[0].data}
    assert list(traces[NAME].y) == values  # the device page's chart builder, cut to the period
    assert list(traces["outside a limit"].y) == [7.25]


def test_device_report_html_escapes_outside_text_and_is_self_contained(store: Store) -> None:
    html = sr.render_html(_device_report(store))
    assert XSS not in html
    assert "PET 1 &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "dose calibrator checked again &lt;script&gt;" in html
    # No network: no outside script or stylesheet; plotly.js travels in the page.
    assert not re.search(r"<(script|link)[^>]+(src|href)=\"?https?:", html)
    assert 'id="sb-plotlyjs"' in html and html.count('id="sb-plotlyjs"') == 1
    assert "status-fail" in html and "outside a limit confirmed by its source" in html


def test_period_that_ends_before_it_starts_is_refused_with_a_message(store: Store) -> None:
    with store.db.sessions() as s:
        device = s.get_one(m.Device, store.ids["device_a"])
        with pytest.raises(sr.InputError, match=r"ends .* before it starts"):
            sr.device_report(s, device, dt.date(2026, 3, 2), dt.date(2026, 3, 1))


def test_a_device_with_no_results_no_spec_and_no_events_says_so(store: Store) -> None:
    with store.db.sessions() as s:
        device = s.get_one(m.Device, store.ids["device_b"])
        report = sr.device_report(s, device, dt.date(2026, 3, 1), dt.date(2026, 3, 31))
        acceptance = sr.acceptance_report(s, device)
    assert dict(report.meta)["Results"] == "0"
    assert "No result was acquired in the period." in _section(
        report, "QC results in the period").notes
    assert any("no evaluation specification" in n for n in _section(
        report, "Specification and scorecard").notes)
    assert _section(report, "Control charts").figures == []
    assert _section(report, "Alerts").tables[0].rows == []
    assert dict(_section(acceptance, "Acceptance tests").meta)["Rule"] == \
        "the device has no result"
    sr.render_html(report)  # renders without a figure or a row


VENDOR_SPEC = """
name: vendor-acceptance-test
title: "Acceptance: EARL calibration bias and a model claim"
version: "1"
description: "test spec"
verified: true
sources: ["test"]
tests:
  - test: pet.calibration_uniformity
    analysis: pet.calibration_uniformity
    frequency: acceptance
    source: "acceptance protocol (test)"
rules:
  - analysis: pet.calibration_uniformity
    measurement: activity_concentration_bias_percent
    low: -10.0
    high: 10.0
    source: "EARL calibration QC within ±10 %"
    confidence: C
  - analysis: pet.calibration_uniformity
    measurement: activity_concentration_bias_percent
    device: {manufacturer: [Siemens], model: [Biograph mCT]}
    low: -6.0
    high: 6.0
    source: "vendor claim sheet 42"
    confidence: C
"""


def test_acceptance_report_takes_the_window_rule_and_judges_by_the_spec(store: Store) -> None:
    spec_file = store.tmp / "vendor-acceptance-test.yaml"
    spec_file.write_text(VENDOR_SPEC, encoding="utf-8")
    with store.db.sessions() as s:
        device = s.get_one(m.Device, store.ids["device_a"])
        lo, hi, rule = sr.acceptance_window(s, device)
        assert (lo, hi) == (dt.datetime(2026, 1, 5, 8), dt.datetime(2026, 1, 21))
        assert "acceptance event (2026-01-20 12:00)" in rule
        report = sr.acceptance_report(s, device, "earl-calibration")
        vendor = sr.acceptance_report(s, device, str(spec_file))
    tables = _section(report, "Acceptance tests").tables
    judged = [t for t in tables if t.title.startswith("EARL") or "(result" in t.title]
    # 10 .. 20 January: 11 daily results, every one inside EARL's ±10 % (the stored ±5 %
    # failed 6.5 % on 15 January; the acceptance spec passes it).
    assert len(judged) == 11
    assert {t.rows[0][-1].status for t in judged} == {"pass"}
    assert {t.rows[0][3].text for t in judged} == {"-10 – 10"}
    vtables = [t for t in _section(vendor, "Acceptance tests").tables if "(result" in t.title]
    claim = {t.rows[0][2].text: (t.rows[0][5].text, t.rows[0][-1].status) for t in vtables}
    assert claim["6.5 %"] == ("-6 – 6 (vendor claim sheet 42)", "fail")
    required = _section(vendor, "Acceptance tests").tables[0]
    assert required.rows[0][-1].status == "passed"


def test_site_dose_report_distributions_against_reference_levels(store: Store) -> None:
    with store.db.sessions() as s:
        site = s.get_one(m.Site, store.ids["site_a"])
        report = sr.site_dose_report(s, site, dt.date(2026, 2, 1), dt.date(2026, 2, 28),
                                     drl="guangzhou-2022-survey")
    ctdi = _section(report, "CTDIvol (mGy)")
    rows = {r[0].text: [c.text for c in r] for r in ctdi.tables[0].rows}
    assert set(rows) == {f"Lumbar spine {XSS}", "L-spine high"}  # not the other site's
    lumbar = rows[f"Lumbar spine {XSS}"]
    # 5, 7, 9, 20 mGy: median 8, Q1 6.5, Q3 11.75 (linear interpolation); the Guangzhou
    # survey's lumbar spine level 23.1 mGy (matched by the protocol text).
    assert lumbar[2:11] == ["4", "8", "6.5", "11.75", "5", "20", "23.1",
                            sr.format_number(8 / 23.1, digits=3), "within"]
    high = rows["L-spine high"]
    assert high[3] == "32" and high[10] == "above DRL" and high[11] == "lumbar spine"
    assert any("Guangzhou" in n for n in ctdi.tables[0].notes)
    # Tukey's fence of the lumbar group: 11.75 + 1.5 × 5.25 = 19.625 mGy < 20 mGy.
    (outlier,) = ctdi.tables[1].rows
    assert [outlier[4].text, outlier[5].text] == ["20 mGy", f"{sr.format_number(19.625)} mGy"]
    assert len(ctdi.figures) == 1
    html = sr.render_html(report)
    assert XSS not in html and "Lumbar spine &lt;script&gt;" in html


@dataclass
class Api:
    client: TestClient
    ids: dict[str, int]


@pytest.fixture(scope="module")
def api(store: Store) -> Iterator[Api]:
    with TestClient(create_app(store.db)) as client:
        yield Api(client, store.ids)


def _login(api: Api, user: str) -> TestClient:
    client = TestClient(api.client.app)
    r = client.post("/api/v1/auth/login", json={"username": user, "password": PW})
    assert r.status_code == 200, r.text
    return client


def test_api_reports_are_scoped_and_escaped(api: Api) -> None:
    a = _login(api, "ph_a")
    dev = api.ids["device_a"]
    r = a.get(f"/api/v1/devices/{dev}/report?from=2026-03-01&to=2026-04-30")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["content-disposition"] == (
        f'attachment; filename="device-{dev}-qc-2026-03-01-2026-04-30.html"')
    assert XSS not in r.text and "&lt;script&gt;" in r.text
    assert a.get(f"/api/v1/devices/{dev}/acceptance-report").status_code == 200
    acc = a.get(f"/api/v1/devices/{dev}/acceptance-report?spec=earl-calibration")
    assert acc.status_code == 200 and "earl-calibration version" in acc.text
    nope = a.get(f"/api/v1/devices/{dev}/acceptance-report?spec=scanbench.db")
    assert nope.status_code == 400 and "no spec 'scanbench.db'" in nope.json()["error"]
    assert a.get(f"/api/v1/devices/{dev}/acceptance-report?spec=../x").status_code == 422
    site = a.get(f"/api/v1/sites/{api.ids['site_a']}/dose-report?from=2026-02-01"
                 "&to=2026-02-28&drl=guangzhou-2022-survey")
    assert site.status_code == 200 and "above DRL" in site.text
    bad = a.get(f"/api/v1/devices/{dev}/report?from=2026-03-02&to=2026-03-01")
    assert bad.status_code == 400 and "before it starts" in bad.json()["error"]
    assert a.get(f"/api/v1/devices/{dev}/report?format=docx").status_code == 422
    assert a.get(f"/api/v1/sites/{api.ids['site_a']}/dose-report?drl=nope"
                 ).status_code == 400
    b = _login(api, "vi_b")
    for url in (f"/api/v1/devices/{dev}/report", f"/api/v1/devices/{dev}/acceptance-report",
                f"/api/v1/sites/{api.ids['site_a']}/dose-report"):
        got = b.get(url)
        assert got.status_code == 404, (url, got.text)
        assert got.json()["error"].startswith("no ")


@pytest.mark.skipif(shutil.which("chromium") is None or shutil.which("pdftotext") is None,
                    reason="needs Debian's chromium and poppler-utils (installed by .ci/run)")
def test_pdf_report_printed_and_read_back(api: Api, store: Store) -> None:
    a = _login(api, "ph_a")
    r = a.get(f"/api/v1/devices/{api.ids['device_a']}/report?from=2026-03-01&to=2026-04-30"
              "&format=pdf")
    assert r.status_code == 200, r.text[:200]
    assert r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF-")
    pdf = store.tmp / "device.pdf"
    pdf.write_bytes(r.content)
    raw = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True,
                         check=True).stdout
    text = " ".join(raw.split())  # a cell's text wraps onto lines: compare it as words
    assert "Device QC report: PET 1 <script>alert(1)</script>" in text  # as text
    for expected in ("MTBF", "713 h", "7.25 %", SOURCE, "dose calibrator checked again"):
        assert expected in text, expected
    # The control chart was drawn by plotly.js before printing: its legend is in the PDF
    # (the baseline bands, the value outside its limit), its placeholder is not.
    assert "drawing the figure" not in text
    assert "outside a limit" in text and "baseline mean" in text


def _all_tables(db: Database, ids: dict[str, int]) -> list[tuple[str, list[list[str]]]]:
    """Every table of the three reports as text (not the scorecards' computation time)."""
    with db.sessions() as s:
        device = s.get_one(m.Device, ids["device_a"])
        site = s.get_one(m.Site, ids["site_a"])
        reports = [sr.device_report(s, device, dt.date(2026, 3, 1), dt.date(2026, 4, 30)),
                   sr.acceptance_report(s, device, "earl-calibration"),
                   sr.site_dose_report(s, site, dt.date(2026, 2, 1), dt.date(2026, 2, 28))]
        s.commit()
    return [(t.title, [[c.text for c in row] for row in t.rows])
            for r in reports for sec in r.sections for t in sec.tables
            if t.title != "Scorecards"]


def test_the_same_reports_from_postgresql(store: Store, pg_server: Any) -> None:  # noqa: F811
    db = Database(url=pg_server.create())
    try:
        ids = _build(db)
        assert ids == store.ids
        assert _all_tables(db, ids) == _all_tables(store.db, store.ids)
    finally:
        db.close()
