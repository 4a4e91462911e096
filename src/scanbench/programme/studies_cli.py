"""``scanbench study ...``, ``scanbench sus ...`` and ``scanbench training ...``: reader
studies, System Usability Scale questionnaires, training records, QC procedure cards and
competency quizzes in the node's store (issue 14 §4-6; the methods are in
:mod:`scanbench.programme.readers`, ``sus``, ``training`` and ``cards``).

Every change is audited as done by ``cli:<login>``. Exit status: 0 done, 2 bad usage or
input (the message names the field)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from scanbench.console import console, text
from scanbench.errors import InputError
from scanbench.evaluation.records_cli import _actor, _device, _print_json, _run
from scanbench.service.cli import HomeOpt, UrlOpt
from scanbench.service.cli import usage_error as _fail

out = console()

study_app = typer.Typer(help="Reader studies: cases scored by readers on criteria, "
                        "blinded, in random order per reader.", no_args_is_help=True)
sus_app = typer.Typer(help="System Usability Scale questionnaires (Brooke 1996) per "
                      "device and role.", no_args_is_help=True)
training_app = typer.Typer(help="Staff training records and reminders, QC procedure "
                           "cards and competency quizzes.", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout only.")]


def register(app: typer.Typer) -> None:
    app.add_typer(study_app, name="study")
    app.add_typer(sus_app, name="sus")
    app.add_typer(training_app, name="training")


def _study(s: Any, ref: str) -> Any:
    from sqlalchemy import select

    from scanbench.store import models as m

    row = s.get(m.ReaderStudy, int(ref)) if ref.isdigit() else s.scalars(
        select(m.ReaderStudy).where(m.ReaderStudy.name == ref)).first()
    if row is None:
        raise InputError(f"no reader study {ref!r} (give its id or name)")
    return row


def _date(value: str, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InputError(f"{what}: {value!r} is not a date (2026-03-02)") from None


# --------------------------------------------------------------------------- study

@study_app.command("create")
def study_create(
    name: str,
    criterion: Annotated[list[str], typer.Option(help="A criterion scored on the scale "
                                                 "(repeat for several).")],
    site: Annotated[str | None, typer.Option(help="The site (name) whose physicists "
                                             "manage the study.")] = None,
    title: str = "",
    blinded: Annotated[bool, typer.Option(help="Hide device and site from readers.")] = True,
    home: HomeOpt = None, database_url: UrlOpt = None,
) -> None:
    """Create a reader study with its criteria (5-point scale)."""
    from sqlalchemy import select

    from scanbench.programme import readers
    from scanbench.store import models as m

    def work(s: Any) -> int:
        site_id = None
        if site is not None:
            row = s.scalars(select(m.Site).where(m.Site.name == site)).first()
            if row is None:
                raise InputError(f"--site: no site named {site!r}")
            site_id = row.id
        return int(readers.create_study(s, _actor(), name, criterion, title=title,
                                        blinded=blinded, site_id=site_id).id)

    out.print(f"reader study {_run(home, database_url, work, change=True)} created")


@study_app.command("add-case")
def study_add_case(
    study: str, series_uid: str,
    pair: Annotated[str | None, typer.Option(help="Pair key: the same patient or "
                                             "phantom on another model.")] = None,
    label: Annotated[str | None, typer.Option(help="What readers see (default "
                                              "'Case <n>').")] = None,
    home: HomeOpt = None, database_url: UrlOpt = None,
) -> None:
    """Add a stored series (by Series Instance UID) as a case."""
    from sqlalchemy import select

    from scanbench.programme import readers
    from scanbench.store import models as m

    def work(s: Any) -> str:
        ser = s.scalars(select(m.Series).where(m.Series.series_uid == series_uid)).first()
        if ser is None:
            raise InputError(f"no stored series {series_uid}")
        return str(readers.add_case(s, _actor(), _study(s, study).id, ser.id, label=label,
                                    pair_key=pair).label)

    out.print(f"case {text(_run(home, database_url, work, change=True))} added")


@study_app.command("add-reader")
def study_add_reader(study: str, username: str,
                     seed: Annotated[int | None, typer.Option(help="Seed of the reading "
                                                              "order (default random).")] = None,
                     home: HomeOpt = None, database_url: UrlOpt = None) -> None:
    """Make a user a reader, with their own random order of the cases."""
    from scanbench.programme import readers
    from scanbench.web import auth

    def work(s: Any) -> list[int]:
        a = readers.assign_reader(s, _actor(), _study(s, study).id,
                                  auth.get_user(s, username).id, seed=seed)
        return list(a.case_order)

    order = _run(home, database_url, work, change=True)
    out.print(f"{text(username)} reads {len(order)} cases in the order {order}")


@study_app.command("close")
def study_close(study: str, home: HomeOpt = None, database_url: UrlOpt = None) -> None:
    """Close a study: no more scores."""
    from scanbench.programme import readers

    _run(home, database_url, lambda s: readers.close_study(s, _actor(), _study(s, study).id),
         change=True)
    out.print("closed")


@study_app.command("results")
def study_results(study: str, as_json: JsonOpt = False, home: HomeOpt = None,
                  database_url: UrlOpt = None) -> None:
    """Means by model (95 % t intervals), weighted kappa, ICC(2,1), paired comparison."""
    from scanbench.programme import readers

    res = _run(home, database_url, lambda s: readers.results(s, _study(s, study).id))
    if as_json:
        _print_json(res)
        return
    table = Table("criterion", "model", "cases", "mean (95 % CI)", "ICC(2,1)",
                  "kappa (linear)", "paired p")
    for c in res["criteria"]:
        icc = c["icc"]["icc"] if c["icc"] and "icc" in c["icc"] else None
        kap = ", ".join(f"{k['kappa']:.2f}" for k in c["kappa_linear"] if k["kappa"] is not None)
        p = c["paired"]["p"] if c["paired"] else None
        for b in c["by_model"]:
            ci = ("" if b["low"] is None else f" ({b['low']:.2f}..{b['high']:.2f})")
            table.add_row(text(c["criterion"]), text(b["model"]), str(b["n"]),
                          f"{b['estimate']:.2f}{ci}", "" if icc is None else f"{icc:.2f}",
                          kap, "" if p is None else f"{p:.3g}")
    out.print(table)


# --------------------------------------------------------------------------- sus

@sus_app.command("add")
def sus_add(device: str, role: str,
            answers: Annotated[list[int], typer.Argument(help="The ten answers, 1..5.")],
            home: HomeOpt = None, database_url: UrlOpt = None) -> None:
    """Record one questionnaire about a device (answers of items 1..10)."""
    from scanbench.programme import sus

    score = _run(home, database_url, lambda s: sus.add_response(
        s, _actor(), _device(s, device).id, role, answers).score, change=True)
    out.print(f"SUS score {score:g} (Brooke 1996)")


@sus_app.command("summary")
def sus_summary(device: Annotated[str | None, typer.Option(help="One device.")] = None,
                as_json: JsonOpt = False, home: HomeOpt = None,
                database_url: UrlOpt = None) -> None:
    """SUS per device and role, per model and by year of life (95 % t intervals)."""
    from sqlalchemy import select

    from scanbench.programme import sus
    from scanbench.store import models as m

    def work(s: Any) -> dict[str, Any]:
        ids = [_device(s, device).id] if device else list(s.scalars(select(m.Device.id)))
        return sus.summarise(s, ids)

    res = _run(home, database_url, work)
    if as_json:
        _print_json(res)
        return
    table = Table("model", "n", "mean SUS (95 % CI)")
    for r in res["per_model"]:
        ci = "" if r["ci_low"] is None else f" ({r['ci_low']:.1f}..{r['ci_high']:.1f})"
        table.add_row(text(r["model"]), str(r["n"]), f"{r['mean']:.1f}{ci}")
    out.print(table)


# --------------------------------------------------------------------------- training

@training_app.command("add")
def training_add(
    username: str,
    topic: Annotated[str, typer.Argument(help="device_operation, qc_procedure or "
                                         "radiation_safety.")],
    completed: Annotated[str, typer.Argument(help="Date completed (2026-03-02).")],
    expires: Annotated[str | None, typer.Option(help="Expiry date.")] = None,
    valid_days: Annotated[int | None, typer.Option(help="Valid for this many days.")] = None,
    device: Annotated[str | None, typer.Option(help="For one device.")] = None,
    procedure: Annotated[str | None, typer.Option(help="For one QC procedure "
                                                  "(<spec>:<test>).")] = None,
    provider: str = "",
    home: HomeOpt = None, database_url: UrlOpt = None,
) -> None:
    """Record a completed training."""
    from scanbench.programme import training
    from scanbench.web import auth

    def work(s: Any) -> int:
        user = auth.get_user(s, username)
        dev = _device(s, device) if device else None
        return int(training.add_record(
            s, _actor(), user.id, topic, _date(completed, "completed"),
            expires_on=_date(expires, "--expires") if expires else None,
            valid_days=valid_days, device_id=dev.id if dev else None,
            site_id=dev.site_id if dev else None, procedure_key=procedure,
            provider=provider).id)

    out.print(f"training record {_run(home, database_url, work, change=True)} added")


@training_app.command("due")
def training_due(within: Annotated[int, typer.Option(help="Days ahead.")] = 60,
                 as_json: JsonOpt = False, home: HomeOpt = None,
                 database_url: UrlOpt = None) -> None:
    """Training that has expired or expires within --within days (the reminders)."""
    from scanbench.programme import training

    rows = _run(home, database_url,
                lambda s: training.reminders(s, dt.date.today(), within_days=within))
    if as_json:
        _print_json(rows)
        return
    table = Table("person", "topic", "procedure", "expires", "state")
    for r in rows:
        table.add_row(text(r["user"]), r["topic"], text(r["procedure_key"] or ""),
                      str(r["expires_on"]), r["state"])
    out.print(table)


@training_app.command("remind")
def training_remind(
    today: Annotated[str | None, typer.Option(
        help="The day to send for (YYYY-MM-DD; default: today).")] = None,
    home: HomeOpt = None, database_url: UrlOpt = None,
) -> None:
    """Send the training reminders due (30 and 7 days before expiry and on expiry, each
    once per record and target) to the sites' notification targets (`scanbench alerts
    targets add`); the node does this daily. SMTP from SCANBENCH_SMTP_HOST/PORT/USER/
    PASSWORD/FROM/STARTTLS. Exit 1 when a delivery failed (it is tried again later)."""
    from scanbench.console import safe
    from scanbench.evaluation.alerts import smtp_from_env
    from scanbench.programme import training

    try:
        day = _date(today, "--today") if today else dt.date.today()
        smtp = smtp_from_env()
    except InputError as exc:
        raise _fail(exc) from None
    sent = _run(home, database_url, lambda s: training.send_reminders(s, day, smtp=smtp))
    failed = [d for d in sent if d.state != "sent"]
    for d in failed:
        out.print(f"not sent: notification {d.notification_id} to target {d.target_id}: "
                  f"{safe(d.error)}")
    out.print(f"{len(sent) - len(failed)} training reminder(s) sent, {len(failed)} failed "
              "(kept pending)")
    if failed:
        raise typer.Exit(1)


@training_app.command("card")
def training_card(procedure: str,
                  output: Annotated[Path | None, typer.Option("--output", "-o",
                                                              help="Write HTML here.")] = None
                  ) -> None:
    """The printable QC procedure card of <spec>:<test> (HTML)."""
    from scanbench.programme import cards

    try:
        page = cards.render_html(cards.card(procedure))
    except InputError as exc:
        raise _fail(exc) from None
    if output is None:
        print(page)
    else:
        output.write_text(page, encoding="utf-8")
        out.print(f"card written to {text(str(output))}")


@training_app.command("quiz")
def training_quiz(
    procedure: str,
    username: Annotated[str | None, typer.Argument(help="Who answers (records the "
                                                   "attempt).")] = None,
    answers: Annotated[str | None, typer.Option(help='JSON {"question id": choice '
                                                "number}; leave out to print the "
                                                "questions.")] = None,
    home: HomeOpt = None, database_url: UrlOpt = None,
) -> None:
    """Print a procedure's competency quiz, or mark and record someone's answers."""
    from scanbench.programme import cards, training
    from scanbench.web import auth

    try:
        qs = cards.quiz(cards.card(procedure))
    except InputError as exc:
        raise _fail(exc) from None
    if answers is None or username is None:
        for q in qs:
            out.print(text(f"[{q['id']}] {q['question']}"))
            for i, c in enumerate(q["choices"]):
                out.print(text(f"    {i}: {c}"))
        out.print(f"pass mark {cards.PASS_MARK:.0%}")
        return
    try:
        given = json.loads(answers)
        if not isinstance(given, dict):
            raise ValueError
    except ValueError:
        raise _fail(InputError('--answers: expected JSON like {"analysis": 1}')) from None

    def work(s: Any) -> Any:
        a = training.attempt_quiz(s, _actor(), auth.get_user(s, username).id, procedure,
                                  given)
        return a.score, a.passed

    score, passed = _run(home, database_url, work, change=True)
    out.print(f"{score:.0%}: {'passed' if passed else 'not passed'} "
              f"(pass mark {cards.PASS_MARK:.0%})")
