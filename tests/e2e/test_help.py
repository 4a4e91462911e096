"""Every command's --help prints and exits 0 (help texts are rich markup: a stray
bracket in one crashed it)."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from scanbench.cli import _mount_subapps, app

runner = CliRunner()


def _commands(group: typer.Typer, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [(*prefix, c.name or c.callback.__name__) for c in group.registered_commands
           if c.callback is not None]
    for sub in group.registered_groups:
        assert sub.typer_instance is not None and sub.name
        out.append((*prefix, sub.name))
        out += _commands(sub.typer_instance, (*prefix, sub.name))
    return out


def test_every_command_has_working_help() -> None:
    _mount_subapps([])  # everything, as for `scanbench --help`
    commands = _commands(app)
    names = {c[0] for c in commands}
    assert {"analyze", "dose", "workflow", "node", "ingest", "export", "simulate", "jobs",
            "db", "pull"} <= names
    assert sum(c[0] == "simulate" for c in commands) >= 15
    for cmd in commands:
        res = runner.invoke(app, [*cmd, "--help"], env={"COLUMNS": "120"})
        assert res.exit_code == 0, (cmd, res.output, res.exception)
        assert "Usage" in res.output, cmd
