"""A node result judged by the spec assigned to its device, before it is stored.

Issue 13 §6: "every new result checked against its limits". The node's jobs analyse
series without a store (:func:`scanbench.service.jobs.run_series_job`, the same path as
``scanbench analyze``, which judges only by a ``--spec`` given on the command line), so
the pipeline judges each result here, in the transaction that stores it:

* the spec in force is the one the device's assignment chose at the result's
  acquisition time (:func:`scanbench.evaluation.assign.spec_for_device`: the most
  specific assignment in force, the newest version of its spec stored at or before that
  instant; the header's local clock time is read in the site's time zone); a result
  without an acquisition time is judged by the spec in force when it is stored;
* it judges **instead of** the analysis' default (the node's analyses set no limits:
  their measurements are stored unjudged): :func:`scanbench.evaluation.judge.apply_spec`
  sets each measurement's limits, source, confirmed flag and pass/fail, and tolerance
  bands warn; ``Result.spec`` is stored as ``name@version`` (:func:`spec_label`) and the result's
  parameters keep ``assigned_spec`` (name, version, SHA-256 of the stored text, the
  assignment's id, the instant it was in force at);
* baseline-relative rules use the device's stored baseline (the mean of the first
  results of its segment, as the scorecard does:
  :class:`scanbench.evaluation.scorecard._Baselines`); a result that is itself part of
  the baseline, or arrives before it is complete, is not judged by those rules (a
  warning says why);
* a spec with no rule for the result's analysis leaves the result as analysed (no spec
  named), so an assignment for one test never blanks another;
* a device with no assignment, or no device, keeps the result as analysed.

A stored result is never rewritten: a later assignment or spec version does not change
it; the scorecard judges stored results again by the version in force for each period.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
from collections.abc import Collection

from sqlalchemy.orm import Session

from scanbench.store import models as m
from scanbench.types import Result

#: Separates a spec's name and version in ``Result.spec`` (spec names are lower case,
#: digits and ``. _ -``, so the first ``@`` is always the separator).
SEPARATOR = "@"
_SPEC_COLUMN = 120  # models.Result.spec is String(120)

log = logging.getLogger(__name__)


def spec_label(name: str, version: str) -> str:
    """``name@version`` as stored in ``Result.spec`` (the name alone when both do not
    fit the column: the version is then in the parameters' ``assigned_spec``)."""
    label = f"{name}{SEPARATOR}{version}"
    return label if len(label) <= _SPEC_COLUMN else name


def split_label(label: str) -> tuple[str, str | None]:
    """(name, version or None) of a stored ``Result.spec``."""
    name, sep, version = label.partition(SEPARATOR)
    return name, (version if sep else None)


def judged_for_storage(session: Session, result: Result, *, device_id: int | None,
                       series_id: int | None, besides: Collection[int] = ()) -> Result:
    """The result the pipeline stores: ``result`` judged by the device's assigned spec
    (:func:`judge_by_assigned_spec`, on a copy), or ``result`` as analysed, with a
    warning, if judging fails (a spec that no longer parses, a defect): a failure to
    judge never loses a result. ``series_id``/``besides`` find the stored row the new
    one supersedes (:func:`scanbench.store.repo.current`)."""
    from scanbench.store import repo

    trial = copy.deepcopy(result)
    try:
        previous = (repo.current(session, series_id, result.analysis, besides)
                    if series_id is not None else None)
        judge_by_assigned_spec(session, trial, device_id,
                               supersedes=None if previous is None else previous.id)
    except Exception as exc:  # never lose the result: store it unjudged, say why
        log.exception("judging a %s result by the device's assigned spec failed",
                      result.analysis)
        result.warnings.append("not judged by the spec assigned to the device: "
                               f"{type(exc).__name__}: {exc}")
        return result
    return trial


def judge_by_assigned_spec(session: Session, result: Result, device_id: int | None, *,
                           supersedes: int | None = None,
                           now: dt.datetime | None = None) -> str | None:
    """Judge ``result`` (not stored yet) by the spec assigned to device ``device_id`` at
    its acquisition time; returns the label stored in ``Result.spec`` or None when no
    assigned spec judges it (the result is then left exactly as it was).
    ``supersedes``: the id of the stored result the new one will supersede (a
    re-analysis of the same series): if that one is part of the device's baseline, so is
    the new one."""
    from scanbench.evaluation import assign as A
    from scanbench.evaluation.judge import apply_spec
    from scanbench.evaluation.scorecard import StoredResult, _Baselines

    if device_id is None:
        return None
    device = session.get(m.Device, device_id)
    if device is None:
        return None
    zone = A.site_zone(session, device)
    stored_at = now or dt.datetime.now(dt.UTC)
    at = A.to_utc(result.acquired_at, zone) if result.acquired_at is not None else stored_at
    found = A.spec_for_device(session, device, at)
    if found is None or not found.spec.rules_for(result.analysis):
        return None
    spec = found.spec
    # the header's clock time, as the store keeps it (store.repo._local)
    local = None if result.acquired_at is None else result.acquired_at.replace(tzinfo=None)
    baseline = None
    note = ""
    if any(r.baseline is not None for r in spec.rules_for(result.analysis)):
        # the new result as the scorecard sees a stored one (with the id of the row it
        # supersedes, else -1; acquired_at None: counted at its storage time)
        row = StoredResult(-1 if supersedes is None else supersedes, result.analysis,
                           result.standard, result.series_instance_uid, local,
                           stored_at, dict(result.parameters), [])
        t = local if local is not None else A.to_local(stored_at, zone)
        baseline, note = _Baselines(session, device).baseline(row, t)
    apply_spec(result, spec, baseline)
    if note and baseline is None:
        # apply_spec's generic warning points to `analyze --baseline`, a command-line
        # remedy; the node's reason is the stored baseline's state
        result.warnings = [w for w in result.warnings if "no baseline value was given" not in w]
    if note:
        result.warnings.append(note)
    label = spec_label(found.row.name, found.row.version)
    result.spec = label
    # provenance: which stored text (SHA-256) and which assignment judged it, and when
    result.parameters["assigned_spec"] = {
        "name": found.row.name, "version": found.row.version, "sha256": found.row.sha256,
        "assignment_id": found.assignment.id, "in_force_at": at.isoformat()}
    result.warnings.extend(found.notes)
    return label
