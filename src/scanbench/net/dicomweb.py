"""Pull new studies from a PACS over DICOMweb (dicomweb-client), on demand or on a schedule.

PS3.18: QIDO-RS finds the studies with a Study Date on or after ``since`` (10.6,
``StudyDate=YYYYMMDD-``, with Number of Study Related Instances), WADO-RS retrieves each
study's instances as they are stored (10.4, ``application/dicom; transfer-syntax=*``:
no transcoding), and each instance goes through the same ingest pipeline as a C-STORE.

What was pulled is remembered per PACS in ``<SCANBENCH_HOME>/pull-state.json`` (study UID
→ number of instances pulled): a study is fetched again only when the PACS reports more
instances than last time, so a schedule that searches the same days over and over costs
one query. The pipeline is idempotent anyway: an instance pulled twice is stored once.

Credentials, when the PACS needs them: ``SCANBENCH_DICOMWEB_USER`` and
``SCANBENCH_DICOMWEB_PASSWORD`` (HTTP basic), never on the command line.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

from scanbench.errors import InputError
from scanbench.net.scp import InstanceSink, outcome_kind

log = logging.getLogger("scanbench.net.dicomweb")

STATE_FILE = "pull-state.json"
_STATE_LOCK = threading.Lock()


@dataclass
class PullReport:
    """What one pull did."""

    url: str
    since: dt.date
    studies_found: int = 0
    studies_pulled: int = 0
    studies_unchanged: int = 0
    stored: int = 0
    duplicate: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.url}: {self.studies_found} studies since {self.since:%Y-%m-%d}, "
                f"{self.studies_pulled} pulled, {self.studies_unchanged} already complete; "
                f"{self.stored} instances stored, {self.duplicate} already here, "
                f"{self.rejected} rejected" + (f"; {len(self.errors)} errors"
                                               if self.errors else ""))


def client_for(url: str, timeout_s: float = 60.0) -> Any:
    """A DICOMwebClient for ``url`` (basic auth from the environment, if set)."""
    import requests
    from dicomweb_client.api import DICOMwebClient

    if not url.startswith(("http://", "https://")):
        raise InputError("the DICOMweb URL must start with http:// or https://", url)
    session = requests.Session()
    user = os.environ.get("SCANBENCH_DICOMWEB_USER")
    if user:
        session.auth = (user, os.environ.get("SCANBENCH_DICOMWEB_PASSWORD", ""))
    client = DICOMwebClient(url=url.rstrip("/"), session=session, timeout=timeout_s)
    # dicomweb-client retries a failed request 5 times over 15 s, connection refused
    # included; a pull reports the failure at once and the schedule tries again later.
    client.set_http_retry_params(retry=False)
    return client


def _value(item: dict[str, Any], tag: str) -> Any:
    values = (item.get(tag) or {}).get("Value") or [None]
    return values[0]


def _part10(ds: Dataset) -> bytes:
    """The instance as a Part 10 file, in the transfer syntax it came in."""
    meta = getattr(ds, "file_meta", None)
    if not isinstance(meta, FileMetaDataset) or "TransferSyntaxUID" not in meta:
        meta = FileMetaDataset()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if "ImplementationClassUID" not in meta:
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    buf = io.BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


class PullState:
    """Which studies were pulled from which PACS, kept in a small JSON file."""

    def __init__(self, home: Path) -> None:
        self.path = home / STATE_FILE

    def load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
            return data if isinstance(data, dict) else {}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("%s unreadable (%s); studies will be searched again", self.path, exc)
            return {}

    def studies(self, url: str) -> dict[str, int]:
        with _STATE_LOCK:
            entry = self.load().get(url) or {}
        return {str(k): int(v) for k, v in (entry.get("studies") or {}).items()}

    def last_pull(self, url: str) -> dt.date | None:
        with _STATE_LOCK:
            text = (self.load().get(url) or {}).get("last_pull")
        try:
            return dt.date.fromisoformat(text) if text else None
        except ValueError:
            return None

    def record(self, url: str, study_uid: str | None, instances: int | None,
               pulled_on: dt.date | None = None) -> None:
        with _STATE_LOCK:
            data = self.load()
            entry = data.setdefault(url, {})
            if study_uid is not None:
                entry.setdefault("studies", {})[study_uid] = int(instances or 0)
            if pulled_on is not None:
                entry["last_pull"] = pulled_on.isoformat()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True), "utf-8")
            os.replace(tmp, self.path)


def pull(url: str, sink: InstanceSink, home: Path, since: dt.date, *,
         client: Any = None, progress: Callable[[str], None] | None = None,
         today: dt.date | None = None) -> PullReport:
    """Pull every study with a Study Date on or after ``since`` that is new or has grown
    since the last pull; each instance goes to ``sink.store_instance``."""
    client = client or client_for(url)
    state = PullState(home)
    known = state.studies(url)
    report = PullReport(url, since)
    try:
        found = client.search_for_studies(
            search_filters={"StudyDate": f"{since:%Y%m%d}-"},
            fields=["StudyInstanceUID", "NumberOfStudyRelatedInstances"], get_remaining=True)
    except Exception as exc:
        raise InputError(f"DICOMweb search failed: {_http_reason(exc)}", url) from None
    report.studies_found = len(found)
    source = f"dicomweb {url}"[:200]
    for item in found:
        study_uid = _value(item, "0020000D")
        count = _value(item, "00201208")
        if not study_uid:
            continue
        study_uid = str(study_uid)
        if count is not None and known.get(study_uid, -1) >= int(count):
            report.studies_unchanged += 1
            continue
        if progress:
            progress(f"pulling study {study_uid}")
        ok = 0
        try:
            for ds in client.iter_study(study_uid,
                                        media_types=(("application/dicom", "*"),)):
                kind, reason = outcome_kind(sink.store_instance(
                    _part10(ds), source=source, calling_ae=None))
                if kind == "rejected":
                    report.rejected += 1
                    log.warning("pulled instance %s of study %s rejected: %s",
                                ds.get("SOPInstanceUID", "?"), study_uid, reason)
                else:
                    setattr(report, kind, getattr(report, kind) + 1)
                    ok += 1
        except Exception as exc:  # network, PACS error: the next pull tries this study again
            report.errors.append(f"study {study_uid}: {_http_reason(exc)}")
            log.error("pulling study %s from %s failed: %s", study_uid, url, _http_reason(exc))
            continue
        report.studies_pulled += 1
        state.record(url, study_uid, int(count) if count is not None else ok)
    if not report.errors:
        state.record(url, None, None, pulled_on=today or dt.date.today())
    return report


def _http_reason(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if response is not None:
        return f"HTTP {response.status_code} {response.reason}"
    return f"{type(exc).__name__}: {exc}"


class PullSchedule:
    """Pull from ``url`` every ``every_s`` seconds in a thread, until ``stop`` is set.

    The first pull searches from ``since``; each later one from the day before the last
    complete pull, so a study that arrived on the PACS late is still found."""

    def __init__(self, url: str, sink: InstanceSink, home: Path, every_s: float,
                 since: dt.date, stop: threading.Event) -> None:
        if every_s <= 0:
            raise InputError("the pull interval must be more than 0 seconds", "--pull-every")
        self.url, self.sink, self.home = url, sink, home
        self.every_s, self.since, self.stop = every_s, since, stop
        self.client = client_for(url)
        self.thread = threading.Thread(target=self._run, name="dicomweb-pull", daemon=True)
        self.reports: list[PullReport] = []

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            last = PullState(self.home).last_pull(self.url)
            since = max(self.since, last - dt.timedelta(days=1)) if last else self.since
            try:
                report = pull(self.url, self.sink, self.home, since, client=self.client)
                self.reports.append(report)
                log.info("scheduled pull: %s", report.summary())
            except Exception as exc:
                log.error("scheduled pull from %s failed: %s", self.url, exc)
            self.stop.wait(self.every_s)

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)
