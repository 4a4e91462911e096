"""Upload of a zip of DICOM for analysis (issue 12 section 1): ``POST /api/v1/uploads``.

The same ingest path as C-STORE and ``scanbench ingest``: every member that opens like
DICOM goes through :meth:`scanbench.service.pipeline.Pipeline.store_instance` (checked,
stored once by SOP Instance UID, indexed, its device registered from the headers), then
the series it filled are analysed by the node's jobs exactly as ``scanbench ingest``
does (:meth:`~scanbench.service.pipeline.Pipeline.drain`: one job per study's complete
series, so multi-series analyses group as ``scanbench analyze`` groups them). The jobs
run in this request (in process), so the answer holds their ids and states.

The archive is untrusted (OWASP File Upload Cheat Sheet; Python's ``zipfile``
documentation, "Decompression pitfalls"):

- the body is read up to :func:`max_upload_bytes` (``SCANBENCH_MAX_UPLOAD_MIB``) and no
  further (413 beyond it), and at most :data:`MAX_ENTRIES` members are accepted;
- zip-slip: a member whose name is absolute, has a drive letter, a backslash or a
  ``..`` part refuses the whole upload (nothing is ever written under a member's name:
  files are kept by SOP Instance UID, but such a name means a crafted archive);
- zip bombs: the sizes the archive declares are checked before anything is unpacked
  (a member over the series limit ``SCANBENCH_MAX_SERIES_MIB``, a total over
  :data:`MAX_UNPACKED_FACTOR` times the upload limit, a member packed more than
  :data:`MAX_RATIO` to 1), and a member is never read past the size it declares;
- a member that is not DICOM is listed as skipped with the reason, never an error.
"""

from __future__ import annotations

import io
import math
import os
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel
from sqlalchemy import select
from starlette.exceptions import HTTPException as StarletteHTTPException

from scanbench.errors import InputError
from scanbench.store import models as m
from scanbench.web.api.app import PREFIX, Ctx, context, route
from scanbench.web.audit import commit_with_retry, record
from scanbench.web.scope import Forbidden

router = APIRouter(prefix=PREFIX, tags=["uploads"])
C = Annotated[Ctx, Depends(context)]

#: Default largest upload (MiB); ``SCANBENCH_MAX_UPLOAD_MIB`` changes it.
MAX_UPLOAD_MIB = 1024
#: Most members one archive may hold (a PET/CT study is a few thousand files).
MAX_ENTRIES = 20_000
#: The members' declared sizes may add up to this many times the upload limit.
MAX_UNPACKED_FACTOR = 4
#: A member larger than 1 MiB packed more than this to 1 is a decompression bomb (DICOM
#: images deflate about 2-10 to 1; a run of zeros 1000 to 1).
MAX_RATIO = 200
#: The role an upload needs on the site its new devices are given to.
UPLOAD_ROLE = "technologist"
_CHUNK = 1 << 20


class Skipped(BaseModel):
    entry: str
    reason: str


class UploadJob(BaseModel):
    id: int
    state: str
    error: str | None
    series: list[str]
    result_ids: list[int]


class UploadOut(BaseModel):
    """What the upload did: members stored, already stored (duplicates), rejected as
    damaged DICOM, skipped as not DICOM; the series filled and the jobs that analysed
    them."""

    entries: int
    stored: int
    duplicates: int
    rejected: list[Skipped]
    skipped: list[Skipped]
    series: list[str]
    jobs: list[UploadJob]


def max_upload_bytes() -> int:
    """``SCANBENCH_MAX_UPLOAD_MIB`` (MiB) or :data:`MAX_UPLOAD_MIB`."""
    text = os.environ.get("SCANBENCH_MAX_UPLOAD_MIB", "")
    try:
        mib = float(text) if text else MAX_UPLOAD_MIB
    except ValueError:
        raise InputError(f"SCANBENCH_MAX_UPLOAD_MIB={text!r} is not a number") from None
    return int(mib * (1 << 20))


class TooLarge(InputError):
    """The upload is over a size limit (HTTP 413)."""


def unsafe_name(name: str) -> str | None:
    """Why a member name could escape an extraction folder (zip-slip), or None."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "an absolute path"
    if "\\" in name:
        return "a backslash in the name"
    if any(part == ".." for part in PurePosixPath(name).parts):
        return "a '..' part"
    if "\x00" in name:
        return "a NUL character in the name"
    return None


def check_archive(zf: zipfile.ZipFile, limit: int, series_limit: int) -> list[zipfile.ZipInfo]:
    """The members to read, after the checks of the module docstring on what the archive
    declares (raises :class:`InputError` / :class:`TooLarge` naming the member)."""
    infos = [i for i in zf.infolist() if not i.is_dir()]
    if len(infos) > MAX_ENTRIES:
        raise TooLarge(f"the zip has {len(infos)} members; at most {MAX_ENTRIES} are accepted")
    total = 0
    for info in infos:
        why = unsafe_name(info.filename)
        if why:
            raise InputError(f"zip member {info.filename[:200]!r} has {why}: refused "
                             "(a crafted archive; nothing was stored)")
        if info.file_size > series_limit:
            raise TooLarge(f"zip member {info.filename[:200]!r} unpacks to "
                           f"{info.file_size / 2**20:.0f} MiB, over the "
                           f"{series_limit / 2**20:.0f} MiB limit (SCANBENCH_MAX_SERIES_MIB)")
        if info.file_size > _CHUNK and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise TooLarge(f"zip member {info.filename[:200]!r} is packed "
                           f"{info.file_size / max(info.compress_size, 1):.0f} to 1 (over "
                           f"{MAX_RATIO} to 1): a decompression bomb, refused")
        total += info.file_size
    if total > MAX_UNPACKED_FACTOR * limit:
        raise TooLarge(f"the zip unpacks to {total / 2**20:.0f} MiB, over "
                       f"{MAX_UNPACKED_FACTOR * limit / 2**20:.0f} MiB")
    return infos


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """The member's bytes, never more than it declares (a lying header is refused)."""
    out = bytearray()
    with zf.open(info) as member:
        while chunk := member.read(_CHUNK):
            out += chunk
            if len(out) > info.file_size:
                raise TooLarge(f"zip member {info.filename[:200]!r} unpacks past the "
                               f"{info.file_size} bytes it declares: refused")
    return bytes(out)


def _dicom_like(raw: bytes) -> bool:
    """Opens like DICOM: a Part 10 preamble and ``DICM``, or a bare data set (as
    ``scanbench ingest`` decides)."""
    from scanbench.dicom.read import _looks_like_raw_dataset

    return (len(raw) >= 132 and raw[128:132] == b"DICM") or _looks_like_raw_dataset(raw[:132])


def _home(request: Request) -> Path:
    from scanbench.web.pages.result import figures_home

    home = figures_home(request)
    if home is None:
        raise InputError("uploads need the node's data directory: run the application "
                         "with `scanbench serve` (or set app.state.home)")
    return home


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the upload is {int(declared) / 2**20:.0f} MiB, over the "
                       f"{limit / 2**20:.0f} MiB limit (SCANBENCH_MAX_UPLOAD_MIB)")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise TooLarge(f"the upload is over the {limit / 2**20:.0f} MiB limit "
                           "(SCANBENCH_MAX_UPLOAD_MIB)")
    return bytes(data)


def _pipeline(home: Path, url: str) -> Any:
    """The node's pipeline for this upload only: its series are complete at once
    (``quiet_seconds`` infinite keeps other senders' series to the node), jobs run in
    this process, and interrupted jobs of the node are left to the node."""
    from scanbench.service.executors import InlineExecutor
    from scanbench.service.pipeline import JobRecord, Pipeline

    class UploadPipeline(Pipeline):
        def _resume(self) -> list[JobRecord]:
            return []  # the node's interrupted jobs are the node's to run

    return UploadPipeline(home, url, quiet_seconds=math.inf, group_wait_seconds=0.0,
                          executor=InlineExecutor(), recover=False)


@route(router, "POST", "/uploads", UPLOAD_ROLE, response_model=UploadOut, status_code=201)
async def upload(request: Request, site_id: int, ctx: C) -> UploadOut:
    """Store the DICOM of a zip (body: the archive, ``Content-Type: application/zip``)
    through the node's ingest path and analyse its series; devices seen for the first
    time are given to ``site_id`` (the caller needs the technologist role there). 201
    with what was stored, skipped and analysed; 400 for an archive that is not a zip,
    holds no DICOM or is crafted (zip-slip); 413 over a size limit."""
    site = ctx.scope.site(site_id)
    if UPLOAD_ROLE not in _roles_at_least(ctx.who.role_on(site.id)):
        raise Forbidden(f"an upload needs the {UPLOAD_ROLE} role on the site")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in ("application/zip", "application/x-zip-compressed",
                     "application/octet-stream"):
        raise InputError(f"content-type {ctype or 'none'!r}: send the zip itself as the "
                         "body with Content-Type: application/zip")
    limit = max_upload_bytes()
    try:
        body = await _body(request, limit)
    except TooLarge as exc:
        raise StarletteHTTPException(413, str(exc)) from None
    # Unpacking, storing and analysing block: off the event loop.
    return await run_in_threadpool(_ingest, request, ctx, site, body, limit)


def _ingest(request: Request, ctx: Ctx, site: m.Site, body: bytes, limit: int) -> UploadOut:
    """The blocking part of :func:`upload`."""
    try:
        return _unpack_and_store(request, ctx, site, body, limit)
    except TooLarge as exc:
        raise StarletteHTTPException(413, str(exc)) from None


def _unpack_and_store(request: Request, ctx: Ctx, site: m.Site, body: bytes,
                      limit: int) -> UploadOut:
    from scanbench.dicom import pixels

    # The pipeline writes through its own connection: end this session's read
    # transaction first (SQLite would keep the writer waiting on it).
    ctx.session.commit()
    try:
        zf = zipfile.ZipFile(io.BytesIO(body))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise InputError(f"the upload is not a readable zip archive ({exc})") from None
    infos = check_archive(zf, limit, pixels.max_series_bytes())
    home = _home(request)
    pipe = _pipeline(home, str(request.app.state.db.url))
    skipped: list[Skipped] = []
    rejected: list[Skipped] = []
    stored = duplicates = 0
    series: set[str] = set()
    source = f"upload:{ctx.who.username}"
    try:
        for info in infos:
            name = info.filename[:300]
            try:
                raw = read_member(zf, info)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError,
                    RuntimeError) as exc:  # RuntimeError: an encrypted member
                skipped.append(Skipped(entry=name, reason=f"cannot unpack: {exc}"))
                continue
            if not _dicom_like(raw):
                skipped.append(Skipped(entry=name, reason="not DICOM"))
                continue
            out = pipe.store_instance(raw, source=f"{source}/{name}"[:200])
            if out.series_instance_uid and not out.rejected:
                series.add(out.series_instance_uid)
            if out.rejected:
                rejected.append(Skipped(entry=name, reason=out.reason or "rejected"))
            elif out.stored:
                stored += 1
            else:
                duplicates += 1
        if not stored and not duplicates:
            what = "; ".join(f"{s.entry}: {s.reason}" for s in (rejected + skipped)[:5])
            raise InputError(f"the zip holds no DICOM that could be stored ({len(infos)} "
                             f"members{': ' + what if what else ''})")
        uids = sorted(series)
        pipe.drain()
        job_ids = list(pipe.submitted)
    finally:
        pipe.close()
    _give_new_devices(ctx, site, uids)
    jobs = _jobs(ctx, job_ids)
    return UploadOut(entries=len(infos), stored=stored, duplicates=duplicates,
                     rejected=rejected, skipped=skipped, series=sorted(uids), jobs=jobs)


def _roles_at_least(role: str | None) -> set[str]:
    from scanbench.web.auth import RANK

    if role is None:
        return set()
    return {r for r, rank in RANK.items() if rank <= RANK[role]}


def _give_new_devices(ctx: Any, site: m.Site, uids: list[str]) -> None:
    """Devices first seen in this upload (no site yet) go to the uploader's site, with an
    audit entry each."""
    from scanbench.web.sites import assign_device

    s = ctx.session
    device_ids = set(s.scalars(select(m.Series.device_id).where(
        m.Series.series_uid.in_(uids), m.Series.device_id.is_not(None))))
    new = list(s.scalars(select(m.Device.id).where(m.Device.id.in_(device_ids),
                                                   m.Device.site_id.is_(None))))
    if not new:
        return
    actor = ctx.actor()

    def work(session: Any) -> None:
        for did in new:
            assign_device(session, actor, did, site)
        record(session, actor, "upload", "site", site.id, site_id=site.id,
               after={"series": len(uids), "devices_assigned": new})

    commit_with_retry(s, work)


def _jobs(ctx: Any, job_ids: list[int]) -> list[UploadJob]:
    s = ctx.session
    s.expire_all()
    out = []
    for job in s.scalars(select(m.Job).where(m.Job.id.in_(job_ids)).order_by(m.Job.id)):
        targets = list((job.params or {}).get("targets") or [job.target_uid])
        result_ids = list(s.scalars(select(m.Result.id).where(
            m.Result.series_uid.in_(targets)).order_by(m.Result.id)))
        out.append(UploadJob(id=job.id, state=job.state, error=job.error, series=targets,
                             result_ids=result_ids))
    return out
