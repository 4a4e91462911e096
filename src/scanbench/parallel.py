"""Analyse a folder of many series on every core, streaming: read, analyse, release.

:func:`scanbench.api.analyze_paths` calls :func:`analyze_units` when more than one worker
is allowed. Files are first grouped from their headers alone (up to (0020,0052), no pixels):
one *unit* per Study Instance UID (0020,000D), and within a study whose series no
multi-series analysis can group (no MR series, no CT beside a PET series, fewer than
five PET series: see :func:`_split_study`) one unit per Series Instance UID
(0020,000E). Every unit is read and analysed by the one shared path
(:func:`scanbench.dicom.read` then :func:`scanbench.api.analyze_series_list`) in a
worker process, which then drops its pixels: memory is bounded by the units being
analysed at once, not by the number of series (issue 15).

The multi-series analyses group series of one study (ACR MRI suite with its localiser,
PET corrections-accuracy frames) or of one frame of reference (MR SNR pairs, PET/CT
co-registration), so studies joined by a frame of reference form one unit, and a study
is never split when one of them could claim its series (:data:`KNOWN_GROUPS`; another
group analysis registered: in process). Inputs for which the header pass cannot
promise the grouping of a whole read (zips, files whose header cannot be parsed or
has no Study/Series Instance UID, an SOP Instance UID repeated across units) are
analysed in process, exactly as with one worker.

Order: results, failures and skipped files are merged in the order a whole read gives
(reading failures by file, then multi-series groups larger first and by analysis id,
then single series in file order). One difference remains: groups of the same
analysis and size from different units follow file order, where a whole read follows
the analysis' own order (MR SNR pairs by acquisition time, the ACR suite's one-series
groups after its study groups).

Pool: :class:`concurrent.futures.ProcessPoolExecutor` with the ``fork`` start method.
Forked workers start with the analysis modules the parent already imported (the
registry imports only the modalities present), and a unit is sent as a list of file
paths, never as pixels. The node's :class:`scanbench.service.executors.LocalExecutor`
(one process per job from a fork server) is built around the node's job records and
imports every analysis in its fork server; a folder of series needs neither.
Workers ignore SIGINT (Ctrl-C reaches the parent, which stops the pool) and are killed
by the kernel if the parent dies (``PR_SET_PDEATHSIG``). A worker that dies fails its
own unit, named, after the unit is retried alone in a fresh process.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import struct
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # concurrent.futures and multiprocessing: imported when a pool starts
    import concurrent.futures as cf

    from scanbench.api import AnalyzeReport, Failure
    from scanbench.types import Result

#: Fewer PET series than this in one study cannot form a corrections-accuracy group
#: (scanbench.analysis.pet.corrections_accuracy groups at least five frames of a study).
_PET_GROUP_MIN = 5


def default_workers() -> int:
    """The cores this process may run on (``sched_getaffinity``; ``cpu_count`` elsewhere)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def splittable(analysis: str | None) -> bool:
    """False for a named multi-series analysis: it groups every series itself, so the
    series are read together (in process)."""
    if not analysis:
        return True
    from scanbench.analysis import registry
    from scanbench.analysis.base import is_group_analysis

    return not is_group_analysis(registry.get(analysis))


@dataclass
class _Header:
    index: int  # position in discovery order
    path: Path
    study: str
    series: str
    modality: str
    frame_of_reference: str
    sop_instance: str
    description: str


@dataclass
class Unit:
    """Files read and analysed together in one worker, in discovery order."""

    files: list[Path]
    indices: list[int]
    where: str  # how a failure of the whole unit is named

    @property
    def first(self) -> int:
        return self.indices[0]


@dataclass
class Plan:
    """The units of a folder, and the non-DICOM files (read with the first unit)."""

    units: list[Unit] = field(default_factory=list)
    modalities: set[str] = field(default_factory=set)


def plan(paths: Sequence[Path],
         progress: Callable[[int, int], None] | None = None) -> Plan | None:
    """Group the files under ``paths`` into units from their headers alone; None when the
    header pass cannot promise the grouping of a whole read (then: in process, as with
    one unit)."""
    from scanbench.dicom.read import _looks_like_raw_dataset, damaged_prefix

    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            for root, dirs, names in os.walk(p):
                dirs.sort()
                files.extend(Path(root) / name for name in sorted(names))
        elif p.is_file():
            files.append(p)
        else:
            return None  # the whole read names it
    headers: list[_Header] = []
    others: list[int] = []  # non-DICOM files: read() notes them as skipped
    tags = ["StudyInstanceUID", "SeriesInstanceUID", "Modality", "FrameOfReferenceUID",
            "SOPInstanceUID", "SeriesDescription"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, path in enumerate(files):
            data = _head_bytes(path)
            if data is None:
                return None
            head = data[:140]
            if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
                return None  # zips: read in process
            if len(head) < 132 or head[128:132] != b"DICM":
                if damaged_prefix(head) or _looks_like_raw_dataset(head):
                    return None
                others.append(i)
                continue
            found = _walk(data, path)
            if found is None:
                found = _pydicom_header(path, tags)
            if found is None:
                return None  # damaged: the whole read says how
            study, series, modality, for_uid, sop, desc = (
                found.get(t, "") for t in (_STUDY, _SERIES, _MODALITY, _FOR, _SOP, _DESC))
            if not study or not series:
                return None
            headers.append(_Header(i, path, study, series, modality, for_uid, sop, desc))
            if progress is not None:
                progress(i + 1, len(files))
    return _units(files, headers, others)


_STUDY, _SERIES, _FOR = 0x0020000D, 0x0020000E, 0x00200052
_SOP, _MODALITY, _DESC = 0x00080018, 0x00080060, 0x0008103E
_WANTED = {_STUDY, _SERIES, _FOR, _SOP, _MODALITY, _DESC}
_LONG = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT",
         b"UV"}
_IMPLICIT_LE = "1.2.840.10008.1.2"
_NOT_LITTLE = {"1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"}  # big endian, deflated
#: Bytes read for the header walk first; the whole file if the tags lie further.
_CHUNK = 16384


def _head_bytes(path: Path, size: int = _CHUNK) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read(size)
    except OSError:
        return None


def _walk(data: bytes | None, path: Path | None = None) -> dict[int, str] | None:
    """The unit-forming tags of a Part 10 file (PS3.10 §7.1) in Implicit or Explicit VR
    Little Endian (PS3.5 §7.1, §A.1-A.2), by walking its top-level elements up to
    (0020,0052) and skipping sequences; None for anything else (then pydicom reads it).
    About ten times faster than ``pydicom.dcmread(stop_before_pixels=True)``, which
    would make the header pass the largest serial part of a parallel run."""
    if data is None or len(data) < 132 or data[128:132] != b"DICM":
        return None
    pos, syntax = 132, None
    try:
        while pos + 8 <= len(data):  # File Meta Information: explicit VR little endian
            group, elem = struct.unpack_from("<HH", data, pos)
            if group != 2:
                break
            vr = data[pos + 4:pos + 6]
            if vr in _LONG:
                length, pos = struct.unpack_from("<L", data, pos + 8)[0], pos + 12
            else:
                length, pos = struct.unpack_from("<H", data, pos + 6)[0], pos + 8
            if elem == 0x0010:
                syntax = data[pos:pos + length].decode("ascii").strip("\0 ")
            pos += length
        if syntax is None or syntax in _NOT_LITTLE:
            return None
        found = _elements(data, pos, syntax == _IMPLICIT_LE)
    except (struct.error, UnicodeDecodeError, _Unusual):
        return None
    if found is None and len(data) == _CHUNK and path is not None:
        return _walk(_head_bytes(path, -1))  # the tags lie further: the whole file
    return found


class _Unusual(Exception):
    """A header the walk does not follow: left to pydicom."""


#: One unpack per element header (PS3.5 §7.1.2-7.1.3): tag and 32-bit length (implicit VR),
#: tag, VR and 16-bit length (explicit VR), and the 32-bit length after a long VR's two
#: reserved bytes. Precompiled: the header pass is serial time of a parallel run.
_TAG_LENGTH = struct.Struct("<HHL").unpack_from
_TAG_VR_LENGTH = struct.Struct("<HH2sH").unpack_from
_LENGTH32 = struct.Struct("<L").unpack_from


def _elements(data: bytes, pos: int, implicit: bool) -> dict[int, str] | None:
    found: dict[int, str] = {}
    end = len(data)
    while True:
        if pos + 8 > end:
            return None  # ran out of the chunk before (0020,0052)
        if implicit:
            group, elem, length = _TAG_LENGTH(data, pos)
            tag = group << 16 | elem
            if tag > _FOR:
                return found
            pos += 8
        else:
            group, elem, vr, length = _TAG_VR_LENGTH(data, pos)
            tag = group << 16 | elem
            if tag > _FOR:
                return found
            if not vr.isalpha() or not vr.isupper():
                raise _Unusual
            if vr in _LONG:
                length = _LENGTH32(data, pos + 8)[0]
                pos += 12
            else:
                pos += 8
        if length == 0xFFFFFFFF:
            pos = _skip_undefined(data, pos, implicit)
            continue
        if pos + length > end:
            return None
        if tag in _WANTED:
            found[tag] = data[pos:pos + length].decode("latin-1").strip("\0 ")
        pos += length


def _skip_undefined(data: bytes, pos: int, implicit: bool) -> int:
    """Past a sequence of undefined length (PS3.5 §7.5): its items, each of defined or
    undefined length, up to the Sequence Delimitation Item (FFFE,E0DD)."""
    while True:
        if pos + 8 > len(data):
            raise _Unusual
        group, elem, length = struct.unpack_from("<HHL", data, pos)
        pos += 8
        if group != 0xFFFE:
            raise _Unusual
        if elem == 0xE0DD:
            return pos
        if elem != 0xE000:
            raise _Unusual
        if length != 0xFFFFFFFF:
            pos += length
            continue
        while True:  # an item of undefined length: its elements up to (FFFE,E00D)
            if pos + 8 > len(data):
                raise _Unusual
            g, e = struct.unpack_from("<HH", data, pos)
            if g == 0xFFFE and e == 0xE00D:
                pos += 8
                break
            if implicit:
                n, pos = struct.unpack_from("<L", data, pos + 4)[0], pos + 8
            else:
                vr = data[pos + 4:pos + 6]
                if vr in _LONG:
                    n, pos = struct.unpack_from("<L", data, pos + 8)[0], pos + 12
                else:
                    n, pos = struct.unpack_from("<H", data, pos + 6)[0], pos + 8
            pos = _skip_undefined(data, pos, implicit) if n == 0xFFFFFFFF else pos + n


def _pydicom_header(path: Path, tags: list[str]) -> dict[int, str] | None:
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=tags)
        values = {t: ds.get(t) for t in _WANTED}
        return {t: str(el.value).strip("\0 ") for t, el in values.items()
                if el is not None and el.value is not None}
    except Exception:
        return None


#: The multi-series analyses whose grouping the units respect (their ``group`` methods):
#: the ACR MRI suite and the PET corrections-accuracy frames group within a study; MR
#: SNR pairs (``mr.common.same_acquisition``) and PET/CT co-registration within a study
#: or a frame of reference; the clinical PET liver noise joins a PET and the CT on its
#: frame of reference. Any other group analysis registered (a plug-in): in process.
KNOWN_GROUPS = frozenset({"mr.acr", "mr.nema_ms1.snr", "pet.nema_nu2_2018.coregistration",
                          "pet.nema_nu2_2018.corrections_accuracy",
                          "pet.clinical_liver_noise"})


def known_groups_only(modalities: set[str]) -> bool:
    """True if every group analysis of these modalities groups as :data:`KNOWN_GROUPS`."""
    from scanbench.analysis import registry
    from scanbench.analysis.base import is_group_analysis

    return all(a.id in KNOWN_GROUPS for a in registry.all_analyses(modalities).values()
               if is_group_analysis(a))


def _units(files: list[Path], headers: list[_Header], others: list[int]) -> Plan | None:
    # Studies that a multi-series analysis may join: MR series (SNR pairs) or a PET and a
    # CT series (co-registration) sharing a frame of reference; an MR series without one
    # may pair with any MR series.
    parent: dict[str, str] = {h.study: h.study for h in headers}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def join(a: str, b: str) -> None:
        parent[root(a)] = root(b)

    by_for: dict[tuple[str, str], str] = {}
    mr_studies = list(dict.fromkeys(h.study for h in headers if h.modality == "MR"))
    for h in headers:
        kind = "MR" if h.modality == "MR" else "PET/CT" if h.modality in ("PT", "CT") else ""
        if not kind:
            continue
        if kind == "MR" and not h.frame_of_reference:
            for other in mr_studies:
                join(h.study, other)
            mr_studies = mr_studies[:1]  # all joined: the first stands for them
        elif h.frame_of_reference:
            join(h.study, by_for.setdefault((kind, h.frame_of_reference), h.study))
    studies: dict[str, list[_Header]] = {}
    for h in headers:
        studies.setdefault(root(h.study), []).append(h)
    groups: list[list[_Header]] = []
    for members in studies.values():
        groups.extend(_split_study(members))
    owner: dict[str, int] = {}
    for n, g in enumerate(groups):
        for h in g:
            if h.sop_instance and owner.setdefault(h.sop_instance, n) != n:
                return None  # a repeated instance across units: read() drops the later one
    out = Plan(modalities={h.modality for h in headers})
    for g in groups:
        g.sort(key=lambda h: h.index)
        first = g[0]
        out.units.append(Unit([h.path for h in g], [h.index for h in g],
                              f"{first.path.parent}: series '{first.description or first.series}'"))
    out.units.sort(key=lambda u: u.first)
    if out.units and others:  # non-DICOM files: skipped by the first unit's read
        u = out.units[0]
        pairs = sorted([*zip(u.indices, u.files, strict=True), *((i, files[i]) for i in others)])
        u.indices, u.files = [i for i, _ in pairs], [f for _, f in pairs]
    return out


def _split_study(members: list[_Header]) -> list[list[_Header]]:
    """One unit per series when no multi-series analysis can group these series (of one
    study, or of studies joined by a frame of reference), else all of them: MR (ACR
    suite, SNR pairs), a CT beside a PET series (co-registration), or five or more PET
    series (corrections accuracy)."""
    modalities = {h.modality for h in members}
    n_pet = len({h.series for h in members if h.modality == "PT"})
    if "MR" in modalities or {"PT", "CT"} <= modalities or n_pet >= _PET_GROUP_MIN:
        return [members]
    by_series: dict[str, list[_Header]] = {}
    for h in members:
        by_series.setdefault(h.series, []).append(h)
    return list(by_series.values())


# --------------------------------------------------------------------------- workers

@dataclass
class _Tagged:
    """A unit's outcome, every item with the key that puts it where a whole read would."""

    results: list[tuple[tuple[Any, ...], Result]]
    failures: list[tuple[tuple[Any, ...], Failure]]
    skipped: list[tuple[tuple[Any, ...], Failure]]
    routed: dict[str, str | None]
    unrecognised: dict[str, Failure]
    series_read: int
    peak_kib: int | None = None  # the worker's own VmHWM after this unit


def _hwm_kib() -> int | None:
    """This process's own peak resident memory (VmHWM, proc(5)); ru_maxrss would carry
    the parent's peak across fork."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _run_unit(unit: Unit, analysis: str | None, params: dict[str, Any] | None) -> _Tagged:
    """Read one unit and analyse it by the shared path; its pixels go with the process's
    next unit (nothing of it is kept). Keys: reading first (file order), then the
    analyses (multi-series groups first, then single series in file order)."""
    from scanbench import dicom
    from scanbench.analysis import registry
    from scanbench.analysis.base import is_group_analysis
    from scanbench.api import AnalyzeReport, Failure, analyze_series_list, series_where

    order = {str(f): i for f, i in zip(unit.files, unit.indices, strict=True)}
    read = dicom.read(unit.files)
    rep = AnalyzeReport()
    rep.skipped.extend(Failure(str(p), why) for p, why in read.skipped)
    rep.failures.extend(Failure(str(w), why) for w, why in read.errors)
    n_read = len(rep.failures)
    first_of = {s.uid: order.get(str(s.files[0]), unit.first) if s.files else unit.first
                for s in read.series}
    where_first = {series_where(s): first_of[s.uid] for s in reversed(read.series)}
    # analyze_series_list names each group, then each single series, as it starts: the
    # failures after a name are that group's or series'.
    # analyze_series_list names each group, then each single series, as it starts: the
    # results and failures after a name are that group's or series'. A group's series are
    # routed just before its name (a single series' only after): what changed in
    # ``routed`` since the last name tells a group, its analysis and its size.
    marks: list[tuple[int, int, str | None, int]] = []
    seen: dict[str, str | None] = {}
    volumes: dict[str, int] = {}
    for s in read.series:
        volumes[s.uid or ""] = volumes.get(s.uid or "", 0) + 1

    def mark(_where: str) -> None:
        changed = {u: a for u, a in rep.routed.items() if u not in seen or seen[u] != a}
        seen.update(changed)
        aids = {a for a in changed.values() if a is not None and a in group_ids}
        aid = aids.pop() if len(aids) == 1 else None
        size = sum(volumes.get(u, 1) for u in changed)  # Series, not UIDs: split volumes
        marks.append((len(rep.results), len(rep.failures), aid, size))

    group_ids = {a.id for a in registry.all_analyses(
        {s.facts.modality for s in read.series}).values() if is_group_analysis(a)}
    analyze_series_list(read.series, analysis=analysis, params=params, report=rep,
                        progress=mark)
    del read

    def key_of(k: int, at: int, phase: int, first: int) -> tuple[Any, ...]:
        """Where a whole read puts the k-th result (at 0) or failure (at 1): a group's
        (larger groups first, then by analysis id, as api._run_groups orders them) or a
        single series' (in file order)."""
        m = next((m for m in reversed(marks) if (m[1] if at else m[0]) <= k), None)
        if m is None:  # a grouping failure, before any group ran
            return (phase, -1, unit.first, k)
        _, _, aid, size = m
        if aid is not None:
            return (phase, 0, -size, aid, unit.first, k)
        return (phase, 1, first, k)

    results = [(key_of(k, 0, 0, first_of.get(r.series_instance_uid, unit.first)), r)
               for k, r in enumerate(rep.results)]
    failures: list[tuple[tuple[Any, ...], Failure]] = []
    for k, f in enumerate(rep.failures):
        if k < n_read:  # reading: files in order, then series that formed no volume
            at = order.get(f.where)
            failures.append(((0, 0, at, k) if at is not None else (0, 1, unit.first, k), f))
        else:
            failures.append((key_of(k, 1, 1, where_first.get(f.where, unit.first)), f))
    skipped = [((order.get(s.where, unit.first), k), s) for k, s in enumerate(rep.skipped)]
    return _Tagged(results, failures, skipped, rep.routed, rep.unrecognised,
                   rep.series_read, _hwm_kib())


def _worker_start() -> None:
    """Ctrl-C goes to the parent alone; the kernel kills the worker if the parent dies;
    one BLAS thread per worker (the workers already fill the cores: OpenBLAS's own
    threads on top of them only contend; measured in bench/README.md)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
            if os.getppid() == 1:  # the parent died before prctl
                os._exit(1)


def _pool(workers: int) -> cf.ProcessPoolExecutor:
    import concurrent.futures as cf
    import multiprocessing

    return cf.ProcessPoolExecutor(max_workers=workers,
                                  mp_context=multiprocessing.get_context("fork"),
                                  initializer=_worker_start)


def _stop(pool: cf.ProcessPoolExecutor) -> None:
    """Cancel what has not started and kill the workers (after Ctrl-C)."""
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        with contextlib.suppress(Exception):
            p.kill()
    for p in processes:
        with contextlib.suppress(Exception):
            p.join(5)


def analyze_units(units: Sequence[Unit], workers: int, *, analysis: str | None,
                  params: dict[str, Any] | None, report: AnalyzeReport,
                  progress: Callable[[str], None] | None = None,
                  peaks: list[int] | None = None) -> AnalyzeReport:
    """Analyse ``units`` on ``workers`` processes and merge their outcomes into ``report``
    in the order a whole read would give (results, failures and skipped files).
    ``peaks``: each worker's own peak memory (KiB) after each unit is appended to it."""
    import concurrent.futures as cf
    from concurrent.futures.process import BrokenProcessPool

    from scanbench.api import Failure

    outcomes: dict[int, _Tagged] = {}
    crashed: list[int] = []
    lost: dict[int, str] = {}  # unit -> why it has no outcome
    pool = _pool(min(workers, len(units)))
    # Python's recipe for fork without exec (gc.freeze): freeze right before the fork, so
    # that the workers' collections leave the objects they inherit alone instead of
    # writing to, and so copying, every page that holds one (about 20 ms of eight PET
    # series on two workers, bench/README.md). The pool forks all its workers at the
    # first submit (fork start method); then this process unfreezes. A caller that froze
    # objects itself (the command line, after its imports) manages the collector: left
    # as it is, so that nothing it did not freeze stays frozen in a long-lived process.
    ours = not gc.get_freeze_count()
    if ours:
        gc.freeze()
    try:
        try:
            futures = {pool.submit(_run_unit, u, analysis, params): n
                       for n, u in enumerate(units)}
        finally:
            if ours:
                gc.unfreeze()
        for fut in cf.as_completed(futures):
            n = futures[fut]
            try:
                outcomes[n] = fut.result()
            except BrokenProcessPool:
                crashed.append(n)
                continue
            except Exception as exc:  # e.g. a result that cannot be pickled: a defect
                lost[n] = (f"internal error ({type(exc).__name__}: {exc}); this is a "
                           "scanbench defect: please report it with the series")
                continue
            if progress:
                progress(units[n].where)
        pool.shutdown()
    except BaseException:
        _stop(pool)
        raise
    for n in sorted(crashed):  # which of the running units killed the pool: each alone
        alone = _alone(units[n], analysis, params)
        if isinstance(alone, str):
            lost[n] = (f"the worker process analysing these {len(units[n].files)} file(s) "
                       f"died ({alone}; out of memory?); the other series were analysed")
        else:
            outcomes[n] = alone
    if peaks is not None:
        peaks.extend(t.peak_kib for t in outcomes.values() if t.peak_kib is not None)
    return _merge(units, outcomes, lost, report, Failure)


def _alone(unit: Unit, analysis: str | None, params: dict[str, Any] | None
           ) -> _Tagged | str:
    """The unit in a process of its own: its outcome, or how the process died."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_solo, args=(send, unit, analysis, params), daemon=True)
    proc.start()
    send.close()
    try:
        try:
            outcome: _Tagged = receive.recv()
            return outcome
        except EOFError:  # died before sending
            proc.join()
            code = proc.exitcode
            if code is not None and code < 0:
                with contextlib.suppress(ValueError):
                    return f"killed by {signal.Signals(-code).name}"
            return f"exit code {code}"
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()
        receive.close()


def _solo(send: Any, unit: Unit, analysis: str | None, params: dict[str, Any] | None) -> None:
    _worker_start()
    send.send(_run_unit(unit, analysis, params))
    send.close()


def _merge(units: Sequence[Unit], outcomes: Mapping[int, _Tagged], lost: Mapping[int, str],
           report: AnalyzeReport, failure: type[Failure]) -> AnalyzeReport:
    results: list[tuple[tuple[Any, ...], Result]] = []
    failures: list[tuple[tuple[Any, ...], Failure]] = []
    skipped: list[tuple[tuple[Any, ...], Failure]] = []
    for n, u in enumerate(units):
        if n in lost:
            failures.append(((1, 1, u.first, -1), failure(u.where, lost[n])))
            continue
        t = outcomes[n]
        results.extend(t.results)
        failures.extend(t.failures)
        skipped.extend(t.skipped)
        report.routed.update(t.routed)
        report.unrecognised.update(t.unrecognised)
        report.series_read += t.series_read
    report.results.extend(r for _, r in sorted(results, key=lambda kr: kr[0]))
    report.failures.extend(f for _, f in sorted(failures, key=lambda kf: kf[0]))
    report.skipped.extend(s for _, s in sorted(skipped, key=lambda ks: ks[0]))
    return report
