"""``scanbench review``: the expert review queue at the central node (issue 14 §2-3) —
``train`` fits the triage models of every device class from the store (and scores the
queued reviews again), ``queue`` queues the results of reviewed sites that have no
review yet, ``list`` prints the queue (most unusual first). Exit status: 0 done, 2 bad
usage. Decisions are made on the page ``/review`` or ``POST /api/v1/reviews/{id}/decision``
(they need a signed-in reviewer: the audit names them)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from scanbench.console import console, safe
from scanbench.errors import ScanbenchError
from scanbench.service.cli import HomeOpt, UrlOpt
from scanbench.service.cli import open_database as _db
from scanbench.service.cli import usage_error as _fail

out = console()

review_app = typer.Typer(help="Expert review queue and its automatic triage (issue 14).",
                         no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(review_app, name="review")


@review_app.command("train")
def train(device_class: Annotated[str | None, typer.Option(
              "--class", help="Only this device class (MODALITY/analysis).")] = None,
          home: HomeOpt = None, database_url: UrlOpt = None) -> None:
    """Fit the triage model of each device class on its accepted history (or, with fewer
    than 20 accepted results, its results that failed no limit), store them (versioned)
    and score the queued reviews again."""
    from scanbench.programme import review, triage
    from scanbench.store.db import home_dir

    db = _db(home, database_url)
    path = triage.models_path(home_dir(home))
    try:
        with db.sessions() as s:
            rows = review.train(s, path, only=device_class)
            n = review.rescore(s, path)
            s.commit()
    except ScanbenchError as exc:
        raise _fail(exc) from None
    finally:
        db.close()
    table = Table("class", "model", "training results", "features")
    for cls, mdl in rows:
        if isinstance(mdl, triage.TriageModel):
            table.add_row(safe(cls), safe(mdl.version), f"{mdl.n_train} ({mdl.trained_on})",
                          str(len(mdl.features)))
        else:
            table.add_row(safe(cls), safe(mdl), "", "")
    out.print(table)
    out.print(f"{n} queued review(s) scored again")


@review_app.command("queue")
def queue(home: HomeOpt = None, database_url: UrlOpt = None) -> None:
    """Queue every result of a site with a reviewer that has no review yet."""
    from scanbench.programme import review, triage
    from scanbench.store.db import home_dir

    db = _db(home, database_url)
    try:
        with db.sessions() as s:
            rows = review.enqueue(s, triage.models_path(home_dir(home)))
            s.commit()
            out.print(f"{len(rows)} result(s) queued for review")
    except ScanbenchError as exc:
        raise _fail(exc) from None
    finally:
        db.close()


@review_app.command("list")
def list_(state: Annotated[str, typer.Option(help="queued, accepted or rejected")] = "queued",
          limit: int = 50, as_json: Annotated[bool, typer.Option("--json")] = False,
          home: HomeOpt = None, database_url: UrlOpt = None) -> None:
    """The reviews of every site, most unusual first (the central node's operator view;
    reviewers see theirs on /review)."""
    from sqlalchemy import select

    from scanbench.programme import review
    from scanbench.store import models as m

    db = _db(home, database_url)
    try:
        with db.sessions() as s:
            sites = list(s.scalars(select(m.Site.id)))
            rows = list(s.scalars(review.queue_query(sites, state).limit(limit)))
            data = [{"id": r.id, "result_id": r.result_id, "site_id": r.site_id,
                     "state": r.state, "triage_score": r.triage_score,
                     "drivers": r.triage_drivers[:3], "model": r.triage_model} for r in rows]
    except ScanbenchError as exc:
        raise _fail(exc) from None
    finally:
        db.close()
    if as_json:
        out.print_json(json.dumps(data))
        return
    table = Table("review", "result", "site", "score", "drivers")
    for d in data:
        drivers = "; ".join(x.get("note") or f"{x['name']} (z {x.get('z', 0):.1f})"
                            if not x.get("missing") else f"{x['name']}: missing"
                            for x in d["drivers"])
        score = "—" if d["triage_score"] is None else f"{d['triage_score']:.2f}"
        table.add_row(str(d["id"]), str(d["result_id"]), str(d["site_id"]), score,
                      safe(drivers))
    out.print(table)
