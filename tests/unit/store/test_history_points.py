"""``repo.points_by_id`` (the history API's second read: every column of the points kept
after downsampling) on SQLite (an IN list) and PostgreSQL (one array parameter,
``id = ANY(...)``): the points of the ids asked, in the order asked, equal to those
``repo.history`` gives; an unknown id is left out; more ids than one chunk holds."""

from __future__ import annotations

import datetime as dt

from scanbench.store import Database, devices, repo
from scanbench.types import DeviceIdentity, Limits, Result

CT = DeviceIdentity("SIEMENS", "SOMATOM Force", "F-1", "CT1", "VA50")


def test_points_by_id_equal_history_in_the_order_asked(database_url: str) -> None:
    db = Database(url=database_url)
    t0 = dt.datetime(2026, 1, 1, 7, 30)
    try:
        with db.session() as s:
            dev = devices.register(s, CT)
            for k in range(40):
                r = Result("ct.daily_qc", "water", f"1.2.{k}", CT, t0 + dt.timedelta(days=k))
                r.add("noise_hu", 4.0 + k / 100, "HU", labels={"roi": "center"},
                      limits=Limits(high=5.5, source="test tolerance"), status="pass")
                repo.save_result(s, r, series_id=None, device_id=dev.id)
        with db.session() as s:
            args = (dev.id, "ct.daily_qc", "noise_hu", {"roi": "center"})
            every = repo.history(s, *args)
            ids = [i for i, _ in repo.history_values(s, *args)]
            assert len(every) == len(ids) == 40
            order = [*range(39, -1, -3), *range(0, 40, 3)]  # not the stored order
            wanted = [ids[k] for k in order]
            got = repo.points_by_id(s, [*wanted, max(ids) + 1000])  # unknown id dropped
            assert got == [every[k] for k in order]
            assert got[0].limit_high == 5.5 and got[0].labels == {"roi": "center"}
            assert repo.points_by_id(s, []) == []
            # Over one 5,000-id chunk: the same points (the rest are unknown ids).
            many = repo.points_by_id(s, [*range(max(ids) + 1, max(ids) + 5001), *wanted])
            assert many == got
    finally:
        db.close()
