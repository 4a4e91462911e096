"""A small fleet for the page tests: two sites, devices that fail, drift, pass or have no
result, a superseded result, an XSS series description, users of each site."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from scanbench.store import Database, devices, repo
from scanbench.store import models as m
from scanbench.types import DeviceIdentity, Limits, Result
from scanbench.web import audit, auth, sites

CLI = audit.Actor(None, "cli:test")
PW = "correct horse battery"
XSS = "<img src=x onerror=alert(1)>"
ANALYSIS = "pet.calibration_uniformity"
STANDARD = "NEMA NU 2-2018 section 7.4.1"


@dataclass
class PagesWorld:
    db: Database
    ids: dict[str, int] = field(default_factory=dict)


def _result(ident: DeviceIdentity, uid: str, day: int, value: float,
            analysis: str = ANALYSIS) -> Result:
    r = Result(analysis, STANDARD, uid, ident, dt.datetime(2026, 3, day, 9, 0))
    r.add("activity_concentration_bias_percent", value, "%", uncertainty=0.4,
          limits=Limits(low=-5, high=5, source="NEMA NU 2-2018 section 7.4.1", verified=True),
          status="pass" if abs(value) <= 5 else "fail")
    r.warnings.append(f"warning with markup {XSS}")
    r.parameters = {"activity_ratio": 4.0}
    return r


def populate(db: Database) -> dict[str, int]:
    """The fleet (see the module docstring); returns the ids the tests use."""
    ids: dict[str, int] = {}
    with db.sessions() as s:
        a = sites.add_site(s, CLI, "Site A")
        b = sites.add_site(s, CLI, "Site B")
        ids["site_a"], ids["site_b"] = a.id, b.id
        auth.grant(s, CLI, auth.add_user(s, CLI, "ph_a", PW), a, "physicist")
        auth.grant(s, CLI, auth.add_user(s, CLI, "vi_b", PW), b, "viewer")
        auth.grant(s, CLI, auth.add_user(s, CLI, "spare_pages", PW), a, "viewer")
        # name -> (site, make, model, values by day (None: no result), superseded fail)
        fleet = {"ok": (a, "GE", "Discovery MI", [1.0, 0.5]),
                 "failing": (a, "Siemens", "Biograph Vision", [0.5, 9.0]),
                 "drifting": (a, "Siemens", "Biograph mCT", [0.2, 0.3]),
                 "empty": (a, "Philips", "Vereos", []),
                 "resolved": (a, "GE", "Omni", [8.0]),
                 "other": (b, "Siemens", "Biograph mCT", [12.0])}
        for n, (key, (site, make, model, values)) in enumerate(fleet.items()):
            ident = DeviceIdentity(make, model, f"SN{n}", f"{key}-station", "VG80")
            dev = devices.register(s, ident)
            dev.site_id, dev.modality, dev.display_name = site.id, "PT", f"PET {key}"
            study = m.Study(study_uid=f"1.2.9.{n}", site_id=site.id)
            s.add(study)
            s.flush()
            ids[f"device_{key}"] = dev.id
            for day, value in enumerate(values, start=1):
                ser = m.Series(series_uid=f"1.2.9.{n}.{day}", study_id=study.id,
                               device_id=dev.id, modality="PT", description=XSS,
                               acquired_at=dt.datetime(2026, 3, day, 9, 0), state="done")
                s.add(ser)
                s.flush()
                res = repo.save_result(s, _result(ident, ser.series_uid, day, value),
                                       series_id=ser.id, device_id=dev.id)
                ids[f"result_{key}_{day}"] = res.id
                ids[f"series_{key}_{day}"] = ser.id
        s.flush()
        # "resolved": its failing result was re-analysed and now passes (supersedes it).
        old = s.get_one(m.Result, ids["result_resolved_1"])
        ident = DeviceIdentity("GE", "Omni", "SN4", "resolved-station", "VG80")
        new = repo.save_result(s, _result(ident, str(old.series_uid), 1, 1.5),
                               series_id=old.series_id, device_id=old.device_id, replace=True)
        ids["result_resolved_new"] = new.id
        s.add(m.Alert(key="drift-1", device_id=ids["device_drifting"], analysis=ANALYSIS,
                      name="activity_concentration_bias_percent", rule="cusum", level="trend",
                      message="CUSUM upper sum crossed h = 5σ", state="open"))
        # "ok" passes its tests, but its newest scorecard has a required test overdue.
        spec = m.Spec(name="pages-test-spec", version="1", yaml="name: pages-test-spec")
        s.add(spec)
        s.flush()
        s.add(m.Scorecard(device_id=ids["device_ok"], spec_id=spec.id, status="fail", data={
            "tests": [{"test": "pet.calibration_uniformity", "title": "Daily calibration QC",
                       "status": "passed"},
                      {"test": "pet.nema_nu2_2018.image_quality", "title": "Image quality",
                       "status": "overdue"},
                      {"test": "pet.sensitivity", "title": "Sensitivity", "status": "due"}]}))
        s.add(m.Alert(key="closed-1", device_id=ids["device_ok"], analysis=ANALYSIS,
                      name="activity_concentration_bias_percent", rule="1-3s", level="trend",
                      message="closed one", state="closed"))
        s.commit()
    return ids


def signed_in(app: object, username: str) -> TestClient:
    """A client signed in through the sign-in page (form + CSRF)."""
    import re

    client = TestClient(app)  # type: ignore[arg-type]
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, page.text
    r = client.post("/login", data={"username": username, "password": PW, "next": "/",
                                    "csrf_token": token.group(1)}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return client


def csrf_of(client: TestClient, path: str = "/") -> str:
    import re

    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert found
    return found.group(1)


def analysed_node(home: Path, phantom: Path, description: str | None = None) -> int:
    """A real node run: a simulated PET uniform-cylinder series stored in ``home`` and
    analysed by its job (in this process); returns the result's id. The figures are
    drawn by the job (scanbench.service.figures). ``description``: written into every
    file's Series Description (0008,103E) before the node receives them."""
    import shutil

    import pydicom
    from sqlalchemy import select, update

    from node_dicom import uniform_phantom
    from scanbench.service.jobs import InlineExecutor
    from scanbench.service.pipeline import Pipeline

    made = _NODES.get(description)
    if made is not None and (made[0] / "scanbench.db").is_file():
        # The same node run again gives the same rows and files: copy the first one
        # (the simulation and the job take seconds; the test session's temporary
        # folders live until the session ends).
        shutil.copytree(made[0], home, dirs_exist_ok=True)
        return made[1]
    uniform_phantom(phantom)
    if description is not None:
        for f in phantom.glob("*.dcm"):
            ds = pydicom.dcmread(f)
            ds.SeriesDescription = description
            ds.save_as(f)
    pipe = Pipeline(home, f"sqlite:///{home / 'scanbench.db'}", quiet_seconds=5.0,
                    executor=InlineExecutor())
    try:
        for f in sorted(phantom.glob("*.dcm")):
            assert pipe.store_path(f).stored
        with pipe.db.session() as s:
            s.execute(update(m.Series).values(last_received=1_000_000.0))
        assert pipe.poll(now=1_000_010.0)
        pipe.collect()
        (job,) = pipe.jobs()
        assert job.state == "done", job.error
        with pipe.db.session() as s:
            rid = int(s.scalars(select(m.Result.id)).one())
    finally:
        pipe.close()
    snapshot = home.parent / f"{home.name}-node-snapshot"  # never changed by a test
    shutil.copytree(home, snapshot, ignore=shutil.ignore_patterns("run"))
    _NODES[description] = (snapshot, rid)
    return rid


#: description -> (home, result id) of the node runs made in this test session.
_NODES: dict[str | None, tuple[Path, int]] = {}


def give_site(db: Database, site_name: str, username: str, role: str) -> None:
    """Every device to a new site ``site_name``, and ``username`` granted ``role`` there."""
    with db.sessions() as s:
        site = sites.add_site(s, CLI, site_name)
        for dev in s.scalars(select_devices()):
            dev.site_id = site.id
        auth.grant(s, CLI, auth.add_user(s, CLI, username, PW), site, role)
        s.commit()


def select_devices() -> Any:
    from sqlalchemy import select

    return select(m.Device)


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` on 127.0.0.1 and a free port (port 0), in a thread; yields its URL."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                            access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="web-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test web server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
