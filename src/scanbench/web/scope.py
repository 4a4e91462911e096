"""The query layer of the web application: every read of site data goes through a
:class:`Scope`, built from the caller's :class:`~scanbench.web.auth.Principal`, which
filters by the sites the caller was granted in ONE place (:meth:`Scope._visible`), so
that a new endpoint cannot forget it (DESIGN.md, "Access control is a property of the
query layer").

A record of a site the caller may not see is reported exactly like one that does not
exist (:class:`NotFound`, HTTP 404, never 403), by id, in lists and in searches, so
ids of other sites' records leak nothing. A device that belongs to no site yet is
seen by nobody on the web until an admin assigns it a site.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, exists, false, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from scanbench.store import models as m
from scanbench.web.auth import Principal, satisfies

T = TypeVar("T")


class NotFound(Exception):
    """No such record, or one the caller may not see (the same to the caller)."""


class Forbidden(Exception):
    """The caller sees the record but their role does not allow the action."""


class Scope:
    """Queries of one caller. ``role`` narrows what counts as granted (e.g. the audit
    log and user lists need admin)."""

    def __init__(self, session: Session, principal: Principal) -> None:
        if not isinstance(principal, Principal):  # never built from a bare id or None
            raise TypeError("a Scope needs the caller's Principal")
        self.session = session
        self.principal = principal

    # ---------------------------------------------------------------- the one filter

    def site_ids(self, role: str = "viewer") -> list[int]:
        return self.principal.sites_with(role)

    def _visible(self, column: InstrumentedAttribute[Any] | InstrumentedAttribute[int | None],
                 role: str = "viewer") -> ColumnElement[bool]:
        """The condition every query of site data carries: ``column`` (a site id) is
        one of the caller's sites with at least ``role``."""
        sites = self.site_ids(role)
        return column.in_(sites) if sites else false()

    def _device_ids(self, role: str = "viewer") -> Select[int]:
        return select(m.Device.id).where(self._visible(m.Device.site_id, role))

    # ---------------------------------------------------------------- sites, devices

    def sites(self) -> Select[m.Site]:
        return select(m.Site).where(self._visible(m.Site.id))

    def site(self, site_id: int) -> m.Site:
        return self._one(self.sites().where(m.Site.id == site_id), "site", site_id)

    def devices(self) -> Select[m.Device]:
        return select(m.Device).where(self._visible(m.Device.site_id))

    def device(self, device_id: int) -> m.Device:
        return self._one(self.devices().where(m.Device.id == device_id), "device", device_id)

    # ---------------------------------------------------------------- DICOM, results

    def series(self) -> Select[m.Series]:
        return select(m.Series).where(m.Series.device_id.in_(self._device_ids()))

    def one_series(self, series_id: int) -> m.Series:
        return self._one(self.series().where(m.Series.id == series_id), "series", series_id)

    def results(self) -> Select[m.Result]:
        return select(m.Result).where(m.Result.device_id.in_(self._device_ids()))

    def result(self, result_id: int) -> m.Result:
        return self._one(self.results().where(m.Result.id == result_id), "result", result_id)

    def measurements(self) -> Select[m.Measurement]:
        return select(m.Measurement).where(m.Measurement.device_id.in_(self._device_ids()))

    def dose_events(self) -> Select[m.DoseEvent]:
        return select(m.DoseEvent).where(m.DoseEvent.device_id.in_(self._device_ids()))

    # ---------------------------------------------------------------- dose, workflow

    def device_ids(self) -> Select[int]:
        """Ids of the visible devices, for statistics that take a device subquery
        (scanbench.clinical.dose_stats.Filters.devices)."""
        return self._device_ids()

    def exam_timings(self) -> Select[m.ExamTiming]:
        return select(m.ExamTiming).where(m.ExamTiming.device_id.in_(self._device_ids()))

    def studies(self) -> Select[m.Study]:
        """Studies with a series, a dose event or an exam timing of a visible device."""
        devices = self._device_ids()
        return select(m.Study).where(or_(
            exists().where(m.Series.study_id == m.Study.id, m.Series.device_id.in_(devices)),
            exists().where(m.DoseEvent.study_id == m.Study.id,
                           m.DoseEvent.device_id.in_(devices)),
            exists().where(m.ExamTiming.study_id == m.Study.id,
                           m.ExamTiming.device_id.in_(devices))))

    def study(self, study_id: int) -> m.Study:
        return self._one(self.studies().where(m.Study.id == study_id), "study", study_id)

    def jobs(self, role: str = "viewer") -> Select[m.Job]:
        """Jobs of visible series (kind series) and of studies with a visible series
        (kind study)."""
        devices = self._device_ids(role)
        series_uids = select(m.Series.series_uid).where(m.Series.device_id.in_(devices))
        study_uids = (select(m.Study.study_uid).join(m.Series, m.Series.study_id == m.Study.id)
                      .where(m.Series.device_id.in_(devices)))
        return select(m.Job).where(or_(
            (m.Job.kind == "series") & m.Job.target_uid.in_(series_uids),
            (m.Job.kind == "study") & m.Job.target_uid.in_(study_uids)))

    def job(self, job_id: int, role: str = "viewer") -> m.Job:
        return self._one(self.jobs(role).where(m.Job.id == job_id), "job", job_id)

    # ---------------------------------------------------------------- scorecards, assignments

    def scorecards(self) -> Select[m.Scorecard]:
        """Scorecards of visible devices."""
        return select(m.Scorecard).where(m.Scorecard.device_id.in_(self._device_ids()))

    def scorecard(self, scorecard_id: int) -> m.Scorecard:
        return self._one(self.scorecards().where(m.Scorecard.id == scorecard_id),
                         "scorecard", scorecard_id)

    def spec_assignments(self) -> Select[m.SpecAssignment]:
        """Spec assignments the caller may see: those of their sites, of their sites'
        devices, and the fleet-wide ones (no site, no device: they name no record of
        any site)."""
        a = m.SpecAssignment
        return select(a).where(or_(
            self._visible(a.site_id),
            a.device_id.in_(self._device_ids()),
            a.site_id.is_(None) & a.device_id.is_(None)))

    def spec_assignment(self, assignment_id: int) -> m.SpecAssignment:
        return self._one(self.spec_assignments().where(m.SpecAssignment.id == assignment_id),
                         "spec assignment", assignment_id)

    # ------------------------------------------------------------ lifecycle, telemetry, costs

    def device_ids_with(self, role: str) -> list[int]:
        """Ids of the devices on the caller's sites where they hold ``role`` (the devices
        a file they import may name)."""
        return list(self.session.scalars(self._device_ids(role)))

    def lifecycle_events(self) -> Select[m.LifecycleEvent]:
        return select(m.LifecycleEvent).where(
            m.LifecycleEvent.device_id.in_(self._device_ids()))

    def lifecycle_event(self, event_id: int) -> m.LifecycleEvent:
        return self._one(self.lifecycle_events().where(m.LifecycleEvent.id == event_id),
                         "lifecycle event", event_id)

    def telemetry(self) -> Select[m.TelemetrySample]:
        return select(m.TelemetrySample).where(
            m.TelemetrySample.device_id.in_(self._device_ids()))

    def costs(self) -> Select[m.DeviceCost]:
        """Costs of devices on the sites where the caller is physicist or admin (who
        manage the budget); viewers and technologists see none."""
        return select(m.DeviceCost).where(
            m.DeviceCost.device_id.in_(self._device_ids("physicist")))

    def cost(self, cost_id: int) -> m.DeviceCost:
        return self._one(self.costs().where(m.DeviceCost.id == cost_id), "cost", cost_id)

    # ---------------------------------------------------------------- admin

    def users(self) -> Select[m.User]:
        """Users holding a grant on a site the caller administers."""
        return select(m.User).where(m.User.id.in_(
            select(m.Grant.user_id).where(self._visible(m.Grant.site_id, "admin"))))

    def user(self, user_id: int) -> m.User:
        return self._one(self.users().where(m.User.id == user_id), "user", user_id)

    def grants(self) -> Select[m.Grant]:
        return select(m.Grant).where(self._visible(m.Grant.site_id, "admin"))

    def audit(self) -> Select[m.AuditEntry]:
        """Audit entries about the sites the caller administers."""
        return select(m.AuditEntry).where(self._visible(m.AuditEntry.site_id, "admin"))

    # ---------------------------------------------------------------- alerts

    def alerts(self) -> Select[m.Alert]:
        """Alerts of the devices on the caller's sites."""
        return select(m.Alert).where(m.Alert.device_id.in_(self._device_ids()))

    def alert(self, alert_id: int) -> m.Alert:
        return self._one(self.alerts().where(m.Alert.id == alert_id), "alert", alert_id)

    def notification_targets(self) -> Select[m.NotificationTarget]:
        """Notification targets of the sites the caller administers (targets of every
        site, ``site_id`` None, are managed from the command line only)."""
        return select(m.NotificationTarget).where(
            self._visible(m.NotificationTarget.site_id, "admin"))

    def notification_target(self, target_id: int) -> m.NotificationTarget:
        return self._one(self.notification_targets().where(
            m.NotificationTarget.id == target_id), "notification target", target_id)

    # ---------------------------------------------------------------- checks

    def require(self, role: str, site_id: int | None) -> None:
        """The caller must hold ``role`` on ``site_id`` (a record they can already see:
        so the refusal is 403, not 404)."""
        have = self.principal.role_on(site_id)
        if have is None:
            raise NotFound("not found")
        if not satisfies(have, role):
            raise Forbidden(f"this needs the {role} role on the record's site")

    def _one(self, query: Select[T], kind: str, ident: object) -> T:
        row = self.session.scalars(query).first()
        if row is None:
            raise NotFound(f"no {kind} with id {ident}")
        return row
