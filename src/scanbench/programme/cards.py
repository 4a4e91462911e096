"""QC procedure cards and their competency quizzes (issue 14 §6), generated from an
evaluation spec and the analysis that does the test — never written by hand, so a card
says what the spec and the analysis say.

A card (one per required test of a spec) gives: the test and why it is required (the
spec's ``tests`` entry: frequency and its source); the phantom and set-up (the
analysis's title and the standard clause it implements); the acquisition protocol
settings the analysis reads (its declared parameters with meanings, units and
defaults); what to export (the reconstructed series as DICOM, every image, unmodified,
to the node); and every limit that judges it with its source and whether the source
was confirmed.

The quiz asks questions whose answers are on the card: which analysis and standard
the test follows, how often it is required, each confirmed limit's value and the
source that sets it. Choices are drawn from the card and from other specs' values
with a generator seeded by the procedure key, so the same quiz can be marked again
from the spec alone. Pass mark :data:`PASS_MARK` (a programme choice, not a standard's).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

from scanbench.errors import InputError
from scanbench.specs import CONFIDENCE_WORDS, Spec, load_spec, measurement_unit

#: The share of correct answers that passes a competency quiz (the programme's choice:
#: four of five).
PASS_MARK = 0.8
FREQUENCY_WORDS = {"daily": "every day", "weekly": "every week", "monthly": "every month",
                   "quarterly": "every quarter", "annual": "every year",
                   "after_service": "after each service", "acceptance": "at acceptance"}
EXPORT = ("Send the reconstructed series to the node as DICOM (C-STORE to the node or "
          "upload in the web application): every image of the series, as the scanner "
          "made it — not screenshots, not re-sliced or anonymised copies (the node "
          "de-identifies what leaves the site).")


@dataclass
class Card:
    """One QC procedure card."""

    key: str  # "<spec>:<test>"
    spec: str
    spec_version: str
    test: str
    title: str
    frequency: str | None
    frequency_source: str
    analysis: str | None
    analysis_title: str
    standard: str
    modality: str
    protocol: list[dict[str, str]] = field(default_factory=list)
    export: str = EXPORT
    limits: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""


def procedure_key(spec: str, test: str) -> str:
    return f"{spec}:{test}"


def cards_of(spec: Spec) -> list[Card]:
    """A card for every required test of ``spec``."""
    from scanbench.analysis import registry
    from scanbench.analysis.base import parameters_of

    out = []
    for t in spec.tests:
        a = None
        if t.analysis:
            try:
                a = registry.get(t.analysis)
            except Exception:  # an analysis this installation lacks: the card says so
                a = None
        limits = [{
            "measurement": r.measurement,
            "labels": dict(r.labels),
            "unit": measurement_unit(r.measurement),
            "low": r.low, "high": r.high,
            "baseline": None if r.baseline is None else {
                "low": r.baseline.low, "high": r.baseline.high, "mode": r.baseline.mode},
            "when": [c.parameter for c in r.when],
            "source": r.source,
            "confirmed": r.confidence == "C",
            "confidence": CONFIDENCE_WORDS[r.confidence],
            "note": r.note,
        } for r in spec.rules if t.analysis and r.analysis == t.analysis]
        out.append(Card(
            key=procedure_key(spec.name, t.test), spec=spec.name, spec_version=spec.version,
            test=t.test, title=t.title or t.test, frequency=t.frequency,
            frequency_source=t.source, analysis=t.analysis,
            analysis_title=a.title if a is not None else "no analysis in this installation",
            standard=a.standard if a is not None else "",
            modality=a.modality if a is not None else "",
            protocol=[{"name": p.name, "description": p.description, "unit": p.unit,
                       "default": p.default_text()} for p in parameters_of(a)]
            if a is not None else [],
            limits=limits, note=t.note))
    return out


def card(key: str, spec: Spec | None = None) -> Card:
    """The card of ``<spec>:<test>`` (a shipped spec's name or a spec file path; or the
    given ``spec``, e.g. the version stored in the node's database)."""
    spec_name, sep, test = key.rpartition(":")
    if not sep or not spec_name or not test:
        raise InputError(f"procedure {key!r}: expected <spec>:<test>, e.g. "
                         "earl1:pet.nema_nu2_2018.image_quality")
    if spec is None:
        spec = load_spec(spec_name)
    for c in cards_of(spec):
        if c.test == test:
            return c
    raise InputError(f"procedure {key!r}: spec {spec_name} has no required test {test!r} "
                     f"(its tests: {', '.join(t.test for t in spec.tests) or 'none'})")


def render_html(c: Card) -> str:
    """The card as a printable HTML page (Jinja2, autoescaped: spec text is outside
    text)."""
    import jinja2

    # the page templates' folder (web/templates/studies_card.html): a standalone page,
    # so that it prints the same from the CLI and from the web application
    env = jinja2.Environment(loader=jinja2.PackageLoader("scanbench.web", "templates"),
                             autoescape=True)
    return env.get_template("studies_card.html").render(c=c, words=FREQUENCY_WORDS)


# --------------------------------------------------------------------------- quiz

def _rng(key: str) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big"))


def _fmt(v: float | None) -> str:
    return "none" if v is None else f"{v:g}"


def quiz(c: Card, max_limits: int = 3) -> list[dict[str, Any]]:
    """The card's questions, each ``{id, question, choices, answer}`` (``answer`` the
    index of the right choice), the same every time for the same card."""
    from scanbench.analysis import registry

    rng = _rng(c.key)
    qs: list[dict[str, Any]] = []

    def ask(qid: str, text: str, right: str, wrong: list[str]) -> None:
        others = [w for w in dict.fromkeys(wrong) if w != right][:3]
        if not others:
            return
        choices = [right, *others]
        rng.shuffle(choices)
        qs.append({"id": qid, "question": text, "choices": choices,
                   "answer": choices.index(right)})

    if c.analysis:
        pool = [a for a in registry.CATALOGUE if a != c.analysis]
        rng.shuffle(pool)
        ask("analysis", f"Which analysis (and so which phantom and standard) does the test "
            f"'{c.title}' follow?", c.analysis, pool)
    if c.frequency:
        ask("frequency", f"How often does spec {c.spec} require '{c.title}'?",
            FREQUENCY_WORDS.get(c.frequency, c.frequency),
            [v for k, v in FREQUENCY_WORDS.items() if k != c.frequency])
    confirmed = [lim for lim in c.limits if lim["confirmed"] and lim["baseline"] is None]
    sources = list(dict.fromkeys(lim["source"] for lim in c.limits))
    for i, lim in enumerate(confirmed[:max_limits]):
        what = lim["measurement"] + "".join(f" {k}={v}" for k, v in lim["labels"].items())
        right = f"{_fmt(lim['low'])} .. {_fmt(lim['high'])} {lim['unit']}"
        wrong = []
        for f in (0.5, 1.5, 2.0, 0.8):
            lo = None if lim["low"] is None else lim["low"] * f
            hi = None if lim["high"] is None else lim["high"] * f
            wrong.append(f"{_fmt(lo)} .. {_fmt(hi)} {lim['unit']}")
        rng.shuffle(wrong)
        ask(f"limit{i}", f"What are the limits (low .. high) of {what}?", right, wrong)
        other_sources = [s for s in sources if s != lim["source"]]
        if len(other_sources) < 3:
            from scanbench.specs import list_specs

            for name in list_specs():
                if len(other_sources) >= 6:
                    break
                try:
                    other_sources += [s for s in load_spec(name).sources
                                      if s != lim["source"]][:2]
                except Exception:  # a spec that does not load: not a distractor
                    continue
        rng.shuffle(other_sources)
        ask(f"source{i}", f"Which source sets the limit of {what}?", lim["source"],
            other_sources)
    return qs


def mark(c: Card, answers: dict[str, Any]) -> dict[str, Any]:
    """Mark ``answers`` (question id -> chosen index) against the card's quiz: score
    (share right, 0..1), passed (score >= :data:`PASS_MARK`), and each question's
    outcome. An unanswered question counts as wrong."""
    qs = quiz(c)
    if not qs:
        raise InputError(f"procedure {c.key}: the card gives no quiz questions")
    unknown = set(answers) - {q["id"] for q in qs}
    if unknown:
        raise InputError(f"quiz {c.key}: unknown questions {sorted(unknown)}")
    right = 0
    detail = {}
    for q in qs:
        given = answers.get(q["id"])
        try:
            ok = given is not None and int(given) == q["answer"]
        except (TypeError, ValueError):
            raise InputError(f"quiz {c.key}: answer to {q['id']} must be a choice "
                             f"number 0..{len(q['choices']) - 1}") from None
        right += ok
        detail[q["id"]] = {"given": given, "correct": ok}
    score = right / len(qs)
    return {"score": score, "pass_mark": PASS_MARK, "passed": score >= PASS_MARK,
            "questions": len(qs), "right": right, "detail": detail}
