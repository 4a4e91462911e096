"""Diagnostic reference levels: tables as data, comparison of exams and protocol medians,
and a local-DRL calculator.

Tables follow the structure of WS/T 637-2018 (STANDARDS.md D.5 [C]): per exam
category, CTDIvol and DLP at the 75th percentile of the facility medians (the
DRL), the 50th (the achievable level) and the 25th (below which a dose is
"abnormally low", a prompt to check image quality). A table is a YAML file
(``clinical/drl/*.yaml`` ships the template and survey context; a programme
loads its own with a path)::

    name: my-region-2026
    title: ...
    source: "where the numbers come from"
    confidence: C            # STANDARDS.md tag of the numbers
    percentiles: {drl: 75, achievable: 50, abnormally_low: 25}
    exams:
      - exam: chest
        match: {regions: [chest]}            # k-factor regions of the coded target region
        # or  match: {description: "(?i)thorax|chest"}  (study description / protocol)
        ctdivol_mgy: {drl: 13.3, achievable: 9.0, abnormally_low: 5.0}
        dlp_mgycm: {drl: 350, achievable: 250, abnormally_low: 150}

Per exam, the compared CTDIvol is the mean over the study's non-localizer
events and the DLP is the study total. A DRL is not a dose limit: the outcome
is a flag for review (``above_drl``, ``above_achievable``,
``below_abnormally_low``, ``within``), never pass/fail. DRLs apply to the
median of a protocol over a facility's patients (ICRP 135); the per-exam
comparison is a screen for outliers.

Local DRL (the method of the Beijing 2023 survey, STANDARDS.md D.5 [C]): the
median of each facility (device) per exam category, then the 25th/50th/75th
percentiles of those medians.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from scanbench.clinical import effective_dose as ed
from scanbench.clinical.dose import StudyDose
from scanbench.errors import SpecError

QUANTITIES = ("ctdivol_mgy", "dlp_mgycm")
LEVELS = ("drl", "achievable", "abnormally_low")


@dataclass(frozen=True)
class ExamLevels:
    exam: str
    regions: tuple[str, ...] = ()
    description: re.Pattern[str] | None = None
    levels: Mapping[str, Mapping[str, float | None]] = field(default_factory=dict)
    note: str | None = None

    def matches(self, study: StudyDose) -> bool:
        if self.regions and _main_region(study) in self.regions:
            return True
        if self.description is not None:
            texts = [study.study_description or ""] + [e.protocol or "" for e in study.events]
            return any(self.description.search(t) for t in texts if t)
        return False


@dataclass(frozen=True)
class DrlTable:
    name: str
    title: str
    source: str
    confidence: str
    percentiles: Mapping[str, int]
    exams: tuple[ExamLevels, ...]

    def category(self, study: StudyDose) -> ExamLevels | None:
        return next((e for e in self.exams if e.matches(study)), None)


def _main_region(study: StudyDose) -> str | None:
    """The k-factor region of the study's non-localizer event with the largest DLP."""
    events = [e for e in study.events if e.acquisition_type != "constant_angle"
              and e.target_region_code is not None]
    if not events:
        return None
    main = max(events, key=lambda e: e.dlp_mgycm or 0.0)
    return ed.region_of(main.target_region_code)


def study_quantities(study: StudyDose) -> dict[str, float | None]:
    """CTDIvol (mean over non-localizer events) and DLP (study total) of one exam."""
    ctdi = [e.ctdivol_mgy for e in study.events
            if e.acquisition_type != "constant_angle" and e.ctdivol_mgy]
    return {"ctdivol_mgy": float(np.mean(ctdi)) if ctdi else None,
            "dlp_mgycm": study.total_dlp_mgycm}


# ----------------------------------------------------------------------------- loading

def _fail(where: str, message: str) -> SpecError:
    return SpecError(message, where)


def parse_table(raw: Any, where: str) -> DrlTable:
    """Validate a DRL table read from YAML."""
    if not isinstance(raw, dict):
        raise _fail(where, "a DRL table must be a mapping with name, source, exams")
    for key in ("name", "source", "exams"):
        if key not in raw:
            raise _fail(where, f"missing '{key}'")
    confidence = str(raw.get("confidence", "U"))
    if confidence not in ("C", "P", "U"):
        raise _fail(where, f"confidence '{confidence}': use C, P or U (C: confirmed in the "
                    "source; P: secondary source only; U: not confirmed)")
    exams = []
    for i, item in enumerate(raw["exams"] or []):
        p = f"exams[{i}]"
        if not isinstance(item, dict) or "exam" not in item:
            raise _fail(where, f"{p}: needs 'exam' (a category name)")
        match = item.get("match") or {}
        regions = tuple(match.get("regions") or ())
        for r in regions:
            if r not in ed.K_FACTORS:
                raise _fail(where, f"{p}.match.regions: unknown region '{r}' "
                                   f"(known: {', '.join(ed.K_FACTORS)})")
        pattern = None
        if match.get("description"):
            try:
                pattern = re.compile(str(match["description"]))
            except re.error as exc:
                raise _fail(where, f"{p}.match.description: bad regular expression: {exc}"
                            ) from None
        if not regions and pattern is None:
            raise _fail(where, f"{p}: 'match' needs regions or description")
        levels: dict[str, dict[str, float | None]] = {}
        for q in QUANTITIES:
            values = item.get(q) or {}
            if not isinstance(values, dict):
                raise _fail(where, f"{p}.{q}: must map drl/achievable/abnormally_low to numbers")
            for k, v in values.items():
                if k not in LEVELS:
                    raise _fail(where, f"{p}.{q}.{k}: use {', '.join(LEVELS)}")
                if v is not None and (not isinstance(v, int | float) or v <= 0):
                    raise _fail(where, f"{p}.{q}.{k}: must be a positive number or null")
            levels[q] = {k: (float(v) if v is not None else None) for k, v in values.items()}
        exams.append(ExamLevels(str(item["exam"]), regions, pattern, levels, item.get("note")))
    return DrlTable(name=str(raw["name"]), title=str(raw.get("title", raw["name"])),
                    source=str(raw["source"]), confidence=confidence,
                    percentiles=dict(raw.get("percentiles") or {"drl": 75}), exams=tuple(exams))


def list_tables() -> list[str]:
    """Names of the DRL tables shipped with scanbench."""
    folder = resources.files("scanbench.clinical") / "drl"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir()
                  if p.name.endswith(".yaml"))


def load_table(name_or_path: str | Path) -> DrlTable:
    """A shipped table by name, or a YAML file by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SpecError(f"cannot read the DRL table: {exc.strerror}", path) from None
        where = str(path)
    else:
        res = resources.files("scanbench.clinical") / "drl" / f"{name_or_path}.yaml"
        if not res.is_file():
            raise SpecError(f"no DRL table '{name_or_path}' (shipped: "
                            f"{', '.join(list_tables())}; or give a .yaml path)")
        text, where = res.read_text(encoding="utf-8"), f"drl/{name_or_path}.yaml"
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"not valid YAML: {exc}", where) from None
    return parse_table(raw, where)


# ----------------------------------------------------------------------------- comparing

@dataclass
class Comparison:
    """One exam (or one protocol median) against one category of a table."""

    subject: str  # study UID, or "device | category" for medians
    exam: str
    quantity: str
    value: float
    levels: Mapping[str, float | None]
    outcome: str
    n: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "exam": self.exam, "quantity": self.quantity,
                "value": self.value, "levels": dict(self.levels), "outcome": self.outcome,
                "n": self.n}


def outcome(value: float, levels: Mapping[str, float | None]) -> str:
    drl, achievable, low = (levels.get(k) for k in LEVELS)
    if drl is not None and value > drl:
        return "above_drl"
    if achievable is not None and value > achievable:
        return "above_achievable"
    if low is not None and value < low:
        return "below_abnormally_low"
    return "within"


def compare_exams(studies: Iterable[StudyDose], table: DrlTable) -> list[Comparison]:
    """Each CT exam's CTDIvol and DLP against its category's levels (exams that match no
    category are left out)."""
    out = []
    for s in studies:
        cat = table.category(s)
        if cat is None:
            continue
        for q, value in study_quantities(s).items():
            levels = cat.levels.get(q) or {}
            if value is None or not any(v is not None for v in levels.values()):
                continue
            out.append(Comparison(s.study_instance_uid, cat.exam, q, value, levels,
                                  outcome(value, levels)))
    return out


def _facility(s: StudyDose) -> str:
    d = s.device
    return " ".join(x for x in (d.manufacturer, d.model, d.serial or d.station) if x) or "?"


def _grouped(studies: Iterable[StudyDose], table: DrlTable
             ) -> dict[tuple[str, str], dict[str, list[float]]]:
    groups: dict[tuple[str, str], dict[str, list[float]]] = {}
    for s in studies:
        cat = table.category(s)
        if cat is None:
            continue
        for q, value in study_quantities(s).items():
            if value is not None:
                groups.setdefault((_facility(s), cat.exam), {}).setdefault(q, []).append(value)
    return groups


def protocol_of(study: StudyDose) -> str:
    """The protocol an exam ran: the acquisition protocol (125203) of its main
    (largest-DLP, non-localizer) event, else the study description."""
    events = [e for e in study.events if e.acquisition_type != "constant_angle" and e.protocol]
    if events:
        return str(max(events, key=lambda e: e.dlp_mgycm or 0.0).protocol)
    return study.study_description or "?"


def compare_medians(studies: Iterable[StudyDose], table: DrlTable,
                    by: str = "protocol") -> list[Comparison]:
    """Each facility's median per protocol (``by="protocol"``) or per exam category
    (``by="category"``) against the levels of its category: the comparison DRLs are
    meant for (ICRP 135: the median of a protocol at a facility)."""
    if by not in ("protocol", "category"):
        raise ValueError("by must be 'protocol' or 'category'")
    by_exam = {e.exam: e for e in table.exams}
    groups: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    for s in studies:
        cat = table.category(s)
        if cat is None:
            continue
        label = protocol_of(s) if by == "protocol" else cat.exam
        for q, value in study_quantities(s).items():
            if value is not None:
                groups.setdefault((_facility(s), cat.exam, label), {}).setdefault(
                    q, []).append(value)
    out = []
    for (facility, exam, label), values in sorted(groups.items()):
        for q, vs in values.items():
            levels = by_exam[exam].levels.get(q) or {}
            if not any(v is not None for v in levels.values()):
                continue
            med = statistics.median(vs)
            out.append(Comparison(f"{facility} | {label}", exam, q, med, levels,
                                  outcome(med, levels), n=len(vs)))
    return out


def local_drl(values_by_facility: Mapping[str, Sequence[float]],
              min_per_facility: int = 1) -> dict[str, float]:
    """P25/P50/P75 of facility medians (numpy's linear percentile) → levels."""
    medians = [statistics.median(v) for v in values_by_facility.values()
               if len(v) >= min_per_facility]
    if not medians:
        raise ValueError("no facility with enough exams for a local DRL")
    p25, p50, p75 = (float(np.percentile(medians, q)) for q in (25, 50, 75))
    return {"drl": p75, "achievable": p50, "abnormally_low": p25}


def local_drl_table(studies: Iterable[StudyDose], categories: DrlTable, name: str,
                    min_per_facility: int = 1) -> dict[str, Any]:
    """A local DRL table (same YAML structure) from a programme's studies, categorised by
    ``categories``; every category with data from at least one facility gets levels."""
    grouped = _grouped(studies, categories)
    exams = []
    for cat in categories.exams:
        entry: dict[str, Any] = {"exam": cat.exam, "match": {}}
        if cat.regions:
            entry["match"]["regions"] = list(cat.regions)
        if cat.description is not None:
            entry["match"]["description"] = cat.description.pattern
        facilities = 0
        for q in QUANTITIES:
            per = {f: v[q] for (f, e), v in grouped.items() if e == cat.exam and q in v}
            per = {f: v for f, v in per.items() if len(v) >= min_per_facility}
            if per:
                entry[q] = {k: round(v, 2) for k, v in local_drl(per).items()}
                facilities = max(facilities, len(per))
        if facilities:
            entry["facilities"] = facilities
            exams.append(entry)
    return {"name": name, "title": f"Local DRL {name}",
            "source": (f"scanbench local DRL: percentiles 25/50/75 of facility medians "
                       f"(categories from '{categories.name}')"),
            "confidence": "C", "percentiles": {"drl": 75, "achievable": 50,
                                               "abnormally_low": 25},
            "exams": exams}
