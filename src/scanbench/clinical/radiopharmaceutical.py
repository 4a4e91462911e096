"""Administered radiopharmaceutical: from the Radiopharmaceutical Radiation Dose SR, or
from the PET image header when there is no dose report.

Sources (STANDARDS.md D.3):
- RRDSR, TID 10021 (root 113500 "Radiopharmaceutical Radiation Dose Report")
  with TID 10022 "Radiopharmaceutical Administration Event Data" (113502): agent
  (SCT 349358000) with its radionuclide (SCT 89457008) and half-life (SCT
  304283002); event UID 113503; administered activity 113507; start/stop
  DateTime 123003/123004; route (SCT 410675002); effective dose 113839 where
  the producer computed one; patient characteristics (121118) with age 121033,
  sex 121032, height LN 8302-2, weight LN 29463-7.
- PET image header, Radiopharmaceutical Information Sequence (0054,0016)
  (PS3.3 C.8.9.2 and C.8.22.4): Radiopharmaceutical (0018,0031),
  Radiopharmaceutical Code Sequence (0054,0304), Radionuclide Code Sequence
  (0054,0300), Radiopharmaceutical Start DateTime (0018,1078) (else Series
  Date + Start Time (0018,1072)), Radionuclide Total Dose (0018,1074) in Bq
  at the start time, Radionuclide Half Life (0018,1075) s, route (0018,1070)
  or Administration Route Code Sequence (0054,0302), and Patient's Weight
  (0010,1030).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset

from scanbench.clinical import sr
from scanbench.clinical.sr import Code, dcm, sct
from scanbench.clinical.units import convert
from scanbench.dicom import headers as h

RRDSR_ROOT = dcm("113500")
ADMINISTRATION = dcm("113502")
AGENT = sct("349358000")
RADIONUCLIDE = sct("89457008")
HALF_LIFE = sct("304283002")
EVENT_UID = dcm("113503")
ACTIVITY = dcm("113507")
PRE_ACTIVITY = dcm("113508")
POST_ACTIVITY = dcm("113509")
START = dcm("123003")
STOP = dcm("123004")
ROUTE = sct("410675002")
EFFECTIVE_DOSE = dcm("113839")
PATIENT_CHARACTERISTICS = dcm("121118")
AGE = dcm("121033")
SEX = dcm("121032")
HEIGHT = ("8302-2", "LN")
WEIGHT = ("29463-7", "LN")

#: Positron emitters (CID 4020 codes, SCT): a radiopharmaceutical study with one of
#: these is PET.
POSITRON_EMITTERS = {
    "77004003": "18F", "40565003": "11C", "21576001": "13N", "12193002": "15O",
    "41143004": "68Ga", "3343002": "82Rb", "424735008": "89Zr", "38473002": "64Cu",
}


@dataclass
class Administration:
    """One radiopharmaceutical administration."""

    agent: str | None = None  # display text (code meaning or header text)
    agent_code: Code | None = None
    radionuclide: str | None = None
    radionuclide_code: Code | None = None
    half_life_s: float | None = None
    administered_activity_mbq: float | None = None
    administered_at: dt.datetime | None = None
    stopped_at: dt.datetime | None = None
    route: str | None = None
    event_uid: str | None = None
    reported_effective_dose_msv: float | None = None
    source: str = "rrdsr"  # "rrdsr" or "image_header"
    warnings: list[str] = field(default_factory=list)

    @property
    def is_pet(self) -> bool:
        code = self.radionuclide_code
        if code is not None:
            return code.key[0] in POSITRON_EMITTERS
        text = (self.radionuclide or "").replace("^", "").lower()
        return any(t in text for t in ("18f", "fluorine", "11c", "carbon", "68ga", "gallium-68",
                                       "82rb", "rubidium", "13n", "15o", "89zr", "64cu"))

    def to_dict(self, weight_kg: float | None = None) -> dict[str, Any]:
        per_kg = (self.administered_activity_mbq / weight_kg
                  if self.administered_activity_mbq is not None and weight_kg else None)
        return {
            "agent": self.agent,
            "agent_code": self.agent_code.to_dict() if self.agent_code else None,
            "radionuclide": self.radionuclide,
            "radionuclide_half_life_s": self.half_life_s,
            "administered_activity_mbq": self.administered_activity_mbq,
            "activity_per_kg_mbq_per_kg": per_kg,
            "administered_at": self.administered_at.isoformat() if self.administered_at else None,
            "route": self.route,
            "event_uid": self.event_uid,
            "reported_effective_dose_msv": self.reported_effective_dose_msv,
            "source": self.source,
        }


@dataclass
class PatientFacts:
    age_years: float | None = None
    sex: str | None = None
    weight_kg: float | None = None
    height_m: float | None = None

    def merge(self, other: PatientFacts) -> None:
        self.age_years = self.age_years if self.age_years is not None else other.age_years
        self.sex = self.sex or other.sex
        self.weight_kg = self.weight_kg if self.weight_kg is not None else other.weight_kg
        self.height_m = self.height_m if self.height_m is not None else other.height_m

    def to_dict(self) -> dict[str, Any]:
        return {"age_years": self.age_years, "sex": self.sex, "weight_kg": self.weight_kg,
                "height_m": self.height_m}


def patient_from_header(ds: Dataset) -> PatientFacts:
    """Patient's Age (0010,1010) ``nnnD/W/M/Y`` (else birth date to study date), Sex
    (0010,0040), Weight (0010,1030) kg, Size (0010,1020) m."""
    age = _age(h.text(ds, "PatientAge"))
    if age is None:
        born = h.parse_date(h.text(ds, "PatientBirthDate"))
        on = h.parse_date(h.text(ds, "StudyDate"))
        if born and on and on >= born:
            age = (on - born).days / 365.25
    weight = h.number(ds, "PatientWeight")
    height = h.number(ds, "PatientSize")
    return PatientFacts(age_years=age, sex=h.text(ds, "PatientSex"),
                        weight_kg=weight if weight and weight > 0 else None,
                        height_m=height if height and height > 0 else None)


def _age(value: str | None) -> float | None:
    if not value or len(value) < 2 or not value[:-1].isdigit():
        return None
    n = int(value[:-1])
    per_year = {"D": 365.25, "W": 365.25 / 7, "M": 12.0, "Y": 1.0}.get(value[-1].upper())
    return n / per_year if per_year else None


def _num(item: sr.Item | None, target: str, what: str, notes: list[str]) -> float | None:
    if item is None:
        return None
    value = item.number()
    if value is None:
        notes.append(f"{what} ({item.path}): no usable numeric value "
                     f"({item.raw_number_text()!r})")
        return None
    out, note = convert(value, item.unit(), target)
    if note:
        notes.append(f"{what}: {note}")
    return out


def from_rrdsr(ds: Dataset) -> tuple[list[Administration], PatientFacts, list[str]]:
    """Administrations (TID 10022) and patient characteristics of one RRDSR."""
    top = sr.root(ds)
    notes: list[str] = []
    out: list[Administration] = []
    admins = top.find_all(ADMINISTRATION)
    if not admins:
        notes.append("radiopharmaceutical dose report without a Radiopharmaceutical "
                     "Administration container (113502): nothing to read")
    for node in admins:
        a = Administration(source="rrdsr")
        agent = node.find(AGENT)
        if agent is not None:
            a.agent_code = agent.code()
            a.agent = a.agent_code.meaning if a.agent_code else agent.text()
            nuclide = agent.find(RADIONUCLIDE)
            if nuclide is not None:
                a.radionuclide_code = nuclide.code()
                a.radionuclide = a.radionuclide_code.meaning if a.radionuclide_code else None
            a.half_life_s = _num(agent.find(HALF_LIFE), "s", "radionuclide half-life", notes)
        if a.radionuclide_code is None:  # some producers put it beside the agent
            nuclide = node.find(RADIONUCLIDE)
            if nuclide is not None:
                a.radionuclide_code = nuclide.code()
                a.radionuclide = a.radionuclide_code.meaning if a.radionuclide_code else None
        uid = node.find(EVENT_UID)
        a.event_uid = uid.text() if uid else None
        start, stop = node.find(START), node.find(STOP)
        a.administered_at = start.datetime() if start else None
        a.stopped_at = stop.datetime() if stop else None
        a.administered_activity_mbq = _num(node.find(ACTIVITY), "MBq", "administered activity",
                                           notes)
        route = node.find(ROUTE)
        code = route.code() if route else None
        a.route = code.meaning if code else None
        for item in node.walk():
            if item.is_(EFFECTIVE_DOSE):
                a.reported_effective_dose_msv = _num(item, "mSv", "effective dose", notes)
                break
        if a.administered_activity_mbq is None:
            notes.append(f"administration {a.event_uid or '?'}: no administered activity (113507)")
        out.append(a)
    patient = PatientFacts()
    chars = top.find(PATIENT_CHARACTERISTICS)
    if chars is not None:
        patient.age_years = _num(chars.find(AGE), "a", "subject age", notes)
        sex = chars.find(SEX)
        sex_code = sex.code() if sex else None
        patient.sex = sex_code.value if sex_code else None
        patient.height_m = _num(chars.find(HEIGHT), "m", "patient height", notes)
        patient.weight_kg = _num(chars.find(WEIGHT), "kg", "patient weight", notes)
    return out, patient, notes


def from_pet_header(ds: Dataset) -> tuple[Administration | None, list[str]]:
    """The administration a PET image header describes, or None if it gives none."""
    info = h.item(ds, "RadiopharmaceuticalInformationSequence")
    if info is None:
        return None, ["PET image without Radiopharmaceutical Information Sequence (0054,0016)"]
    notes: list[str] = []
    a = Administration(source="image_header")
    a.agent_code = sr.code_of(h.item(info, "RadiopharmaceuticalCodeSequence"))
    a.agent = h.text(info, "Radiopharmaceutical") or (a.agent_code.meaning if a.agent_code
                                                       else None)
    a.radionuclide_code = sr.code_of(h.item(info, "RadionuclideCodeSequence"))
    a.radionuclide = a.radionuclide_code.meaning if a.radionuclide_code else None
    a.half_life_s = h.number(info, "RadionuclideHalfLife")
    dose_bq = h.number(info, "RadionuclideTotalDose")
    a.administered_activity_mbq = dose_bq / 1e6 if dose_bq is not None and dose_bq > 0 else None
    if a.administered_activity_mbq is None:
        notes.append("PET header: no Radionuclide Total Dose (0018,1074)")
    start = h.parse_datetime(h.text(info, "RadiopharmaceuticalStartDateTime"))
    if start is None:
        start = h.combine(h.text(ds, "SeriesDate") or h.text(ds, "StudyDate"),
                          h.text(info, "RadiopharmaceuticalStartTime"))
        if start is not None:
            notes.append("injection time from Radiopharmaceutical Start Time (0018,1072) on the "
                         "series date (no Start DateTime (0018,1078))")
    a.administered_at = start
    a.stopped_at = h.parse_datetime(h.text(info, "RadiopharmaceuticalStopDateTime"))
    route = sr.code_of(h.item(info, "AdministrationRouteCodeSequence"))
    a.route = route.meaning if route else h.text(info, "RadiopharmaceuticalRoute")
    a.event_uid = h.text(info, "RadiopharmaceuticalAdministrationEventUID")
    return a, notes
