"""Helpers of the lifecycle/telemetry/costs tests (imported by name: a module called
``conftest`` would clash with the other test folders'): a real database with two sites
and their devices."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scanbench.store import Database
from scanbench.store import models as m
from scanbench.web import audit, sites

CLI = audit.Actor(None, "cli:test")


@dataclass
class Fleet:
    db: Database
    ids: dict[str, int]


def make_fleet(db: Database) -> dict[str, int]:
    """Site A (Europe/Paris): two MRI magnets of different models and two CTs of one
    model; site B (no time zone): one CT."""
    ids: dict[str, int] = {}
    with db.sessions() as s:
        a = sites.add_site(s, CLI, "Site A", timezone="Europe/Paris")
        b = sites.add_site(s, CLI, "Site B")
        ids["site_a"], ids["site_b"] = a.id, b.id
        rows = {
            "mr_free": (a, "Philips", "Ingenia Ambition", "HF-1", "Sealed 1.5T", "MR"),
            "mr_conv": (a, "Siemens", "Aera", "CV-2", "Conventional 1.5T", "MR"),
            "ct1": (a, "GE", "Revolution", "CT-1", "CT one", "CT"),
            "ct2": (a, "GE", "Revolution", "CT-2", "CT two", "CT"),
            "ct_b": (b, "GE", "Revolution", "CT-B", "CT of B", "CT"),
        }
        for key, (site, make, model, serial, name, modality) in rows.items():
            d = m.Device(identity_key=f"{make}|{model}|{serial}", site_id=site.id,
                         manufacturer=make, model=model, serial=serial, display_name=name,
                         modality=modality)
            s.add(d)
            s.flush()
            ids[key] = d.id
        s.commit()
    return ids


@pytest.fixture
def fleet_any_db(database_url: str) -> Iterator[Fleet]:
    """The fleet on SQLite and on PostgreSQL (for the queries that differ)."""
    db = Database(url=database_url)
    try:
        yield Fleet(db, make_fleet(db))
    finally:
        db.close()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    """A fresh SQLite file per test."""
    db = Database(url=f"sqlite:///{tmp_path / 'records.sqlite'}")
    try:
        yield Fleet(db, make_fleet(db))
    finally:
        db.close()
