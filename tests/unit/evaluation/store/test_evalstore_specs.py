"""Specs in the store and their assignment by device class (issue 13 §1): every shipped
spec stores and parses back to the same limits, storing is idempotent, a changed text
under a stored version is refused, a child file stores its parent file, the most
specific assignment wins, the spec's applies_to is honoured, changes are audited."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import func, select

from scanbench.errors import SpecError
from scanbench.evaluation import assign as A
from scanbench.specs import list_specs, load_spec
from scanbench.store import Database, devices
from scanbench.store import models as m
from scanbench.types import DeviceIdentity
from scanbench.web import audit, sites

CLI = audit.Actor(None, "cli:test")
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _count(s: object, model: type) -> int:
    return int(s.scalar(select(func.count()).select_from(model)) or 0)  # type: ignore[attr-defined]


def test_every_builtin_spec_stores_and_reloads_the_same_limits(database_url: str) -> None:
    db = Database(url=database_url)
    try:
        with db.sessions() as s:
            assert A.ensure_builtin_specs(s) == []
            s.commit()
            n = _count(s, m.Spec)
            assert n == len(list_specs())
            assert A.ensure_builtin_specs(s) == [] and _count(s, m.Spec) == n  # idempotent
            for name in list_specs():
                row = A.stored_spec(s, name)
                shipped = load_spec(name)
                back = A.parse_stored(s, row)
                assert shipped.path is not None
                assert row.sha256 == A.sha256_text(shipped.path.read_text(encoding="utf-8"))
                assert row.origin == A.BUILTIN and row.version == shipped.version
                assert (back.rules, back.tests, back.weights, back.applies_to) == \
                    (shipped.rules, shipped.tests, shipped.weights, shipped.applies_to), name
    finally:
        db.close()


SITE = """name: site-cal
title: Site calibration QC
version: "{version}"
description: weekly calibration QC over the national spec
verified: true
extends: {parent}
sources: ["site QC manual"]
rules:
  - analysis: pet.calibration_uniformity
    measurement: activity_concentration_bias_percent
    low: {low}
    high: 5
    source: "site QC manual 4.1"
    confidence: C
"""
NATIONAL = """name: national-cal
title: National calibration QC
version: "1"
description: calibration QC
verified: true
sources: ["national QC code"]
applies_to: {modality: PT}
tests:
  - {test: pet.calibration_uniformity, analysis: pet.calibration_uniformity,
     frequency: weekly, dimension: image_quality, source: "national QC code 3"}
rules:
  - analysis: pet.calibration_uniformity
    measurement: activity_concentration_bias_percent
    low: -10
    high: 10
    source: "national QC code 3"
    confidence: C
"""


def test_a_file_spec_stores_its_parent_and_a_changed_text_needs_a_new_version(
        tmp_path: Path) -> None:
    (tmp_path / "national.yaml").write_text(NATIONAL)
    child = tmp_path / "site.yaml"
    child.write_text(SITE.format(version="1", parent="national.yaml", low=-5))
    db = Database(url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        with db.sessions() as s:
            row = A.load_spec_file(s, child)
            assert row.extends == "national-cal"
            assert A.stored_spec(s, "national-cal").origin.endswith("national.yaml")
            # parsed back from the store alone (the files gone), inheritance resolved
            (tmp_path / "national.yaml").unlink()
            back = A.parse_stored(s, row)
            assert [t.test for t in back.tests] == ["pet.calibration_uniformity"]
            assert (back.rules[0].low, back.rules[0].high) == (-5.0, 5.0)
            (tmp_path / "national.yaml").write_text(NATIONAL)
            assert A.load_spec_file(s, child).id == row.id  # same text: nothing added
            child.write_text(SITE.format(version="1", parent="national.yaml", low=-4))
            with pytest.raises(SpecError, match="already stored with a different text"):
                A.load_spec_file(s, child)
            child.write_text(SITE.format(version="2", parent="national.yaml", low=-4))
            assert A.load_spec_file(s, child).version == "2"
            assert [r.version for r in s.scalars(select(m.Spec).where(
                m.Spec.name == "site-cal").order_by(m.Spec.id))] == ["1", "2"]
    finally:
        db.close()


MR3T = """name: mr-3t-site
title: Site MRI QC at 3 T
version: "1"
description: weekly SNR at 3 T
verified: true
applies_to: {modality: MR, field_strength_t: {min: 2.0}}
tests:
  - {test: mr.nema_ms1.snr, frequency: weekly, source: "site SOP 2"}
"""


def _device(s: object, site: m.Site, serial: str, modality: str, model: str,
            field: float | None = None) -> m.Device:
    dev = devices.register(s, DeviceIdentity("Siemens", model, serial),  # type: ignore[arg-type]
                           modality=modality)
    dev.site_id, dev.field_strength_t = site.id, field
    return dev


def test_the_most_specific_assignment_wins_and_applies_to_is_honoured(
        database_url: str) -> None:
    db = Database(url=database_url)
    try:
        with db.sessions() as s:
            a = sites.add_site(s, CLI, "A")
            b = sites.add_site(s, CLI, "B")
            pet = _device(s, a, "1", "PT", "Biograph Vision")
            pet_b = _device(s, b, "2", "PT", "Biograph mCT")
            mr15 = _device(s, a, "3", "MR", "Aera", 1.5)
            mr3 = _device(s, a, "4", "MR", "Skyra", 3.0)
            s.flush()
            crit = A.DeviceClassCriteria
            A.assign(s, CLI, "earl-calibration", crit(modality="PT"), valid_from=T0)
            A.assign(s, CLI, "earl1", crit(model="biograph-vision"), valid_from=T0)
            A.assign(s, CLI, "earl2", crit(site_id=b.id, modality="pt"), valid_from=T0)
            A.store_spec_text(s, MR3T, origin="upload")
            A.assign(s, CLI, "mr-3t-site", crit(modality="MR", field_strength_min_t=2.0),
                     valid_from=T0)
            A.assign(s, CLI, "ws-t-263-2006", crit(modality="MR"), valid_from=T0)
            # a PET spec assigned to an MR device: its applies_to excludes it, passed over
            A.assign(s, CLI, "ws-817-2023", crit(device_id=mr15.id), valid_from=T0)
            at = T0 + dt.timedelta(days=30)

            def name(d: m.Device) -> str | None:
                got = A.spec_for_device(s, d, at)
                return got.row.name if got else None

            assert name(pet) == "earl1"  # the model beats the modality
            assert name(pet_b) == "earl2"  # site + modality beat modality alone
            assert name(mr3) == "mr-3t-site"  # modality + field range
            assert name(mr15) == "ws-t-263-2006"  # 1.5 T is outside [2, ...)
            got = A.spec_for_device(s, mr15, at)
            assert got is not None and any("ws-817-2023" in n for n in got.notes)
            later = at + dt.timedelta(days=1)
            one = A.assign(s, CLI, "earl2", crit(device_id=pet.id), valid_from=later)
            assert name(pet) == "earl1"  # not yet in force at `at`
            assert A.spec_for_device(s, pet, later).row.name == "earl2"  # type: ignore[union-attr]
            A.deactivate(s, CLI, one.id, at=later + dt.timedelta(days=1))
            assert A.spec_for_device(s, pet, later).row.name == "earl2"  # type: ignore[union-attr]
            assert A.spec_for_device(s, pet, later + dt.timedelta(days=2)
                                     ).row.name == "earl1"  # type: ignore[union-attr]
            s.commit()
            entries = list(s.scalars(select(m.AuditEntry).where(
                m.AuditEntry.entity == "spec_assignment").order_by(m.AuditEntry.id)))
            assert [e.action for e in entries][-2:] == ["spec.assign", "spec.unassign"]
            before, after = entries[-1].before or {}, entries[-1].after or {}
            assert before["active"] is True and after["active"] is False
            assert entries[-1].site_id == a.id
            assert audit.verify(s).ok
    finally:
        db.close()
