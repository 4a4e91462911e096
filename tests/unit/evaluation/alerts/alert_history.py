"""Constructed histories stored through the real store path (repo.save_result)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy.orm import Session

from scanbench.store import devices, repo
from scanbench.store import models as m
from scanbench.types import DeviceIdentity, Limits, Result

T0 = dt.datetime(2026, 1, 1, 8, 0)
ANALYSIS, NAME, UNIT = "ct.water", "noise_hu", "HU"
#: 30 baseline values (alerts.SETTINGS estimates a baseline from 30) of mean 0 and
#: sample SD sqrt(30/29) = 1.0171 HU; widened by the prediction-interval factor for 30
#: values, 1.11155, the σ the rules use is 1.13055 HU
BASE = [1.0 if i % 2 == 0 else -1.0 for i in range(30)]


def device(s: Session, serial: str = "1", site_id: int | None = None) -> m.Device:
    dev = devices.register(s, DeviceIdentity("GE", "Revolution", serial))
    dev.site_id = site_id
    s.flush()
    return dev


def store(s: Session, dev: m.Device, values: Sequence[float], *, start: int = 0,
          limits: Limits | None = None, status: Sequence[str] | None = None,
          spec: str | None = None, job_id: int | None = None) -> list[int]:
    """One result a day from ``T0 + start`` days, each on its own series (so a rerun
    supersedes it as the node's jobs do); returns the result ids."""
    ids = []
    study = s.query(m.Study).filter_by(study_uid=f"9.{dev.id}").one_or_none()
    if study is None:
        study = m.Study(study_uid=f"9.{dev.id}")
        s.add(study)
        s.flush()
    for k, v in enumerate(values):
        day = start + k
        uid = f"9.{dev.id}.{day}"
        ser = s.query(m.Series).filter_by(series_uid=uid).one_or_none()
        if ser is None:
            ser = m.Series(series_uid=uid, study_id=study.id, device_id=dev.id,
                           state="done")
            s.add(ser)
            s.flush()
        r = Result(ANALYSIS, "IEC 61223-3-5:2019", uid,
                   DeviceIdentity("GE", "Revolution", dev.serial),
                   T0 + dt.timedelta(days=day), spec=spec)
        meas = r.add(NAME, v, UNIT, limits=limits)
        if status is not None:
            meas.status = status[k]  # type: ignore[assignment]
        elif limits is not None:
            meas.status = limits.check(v)
        row = repo.save_result(s, r, series_id=ser.id, device_id=dev.id, job_id=job_id)
        ids.append(row.id)
    return ids
