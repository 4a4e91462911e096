"""``scanbench analyze ... --json`` without Typer (``scanbench.entry``, issue 15).

The console script runs that one form of the command line itself when stderr is not a
terminal; every check here runs the fast path and the full Typer command line
(``scanbench.cli.main``) in fresh interpreters on the same input and asserts the same
stdout, stderr and exit status, so the two cannot drift apart. The fast path must also
import neither Typer, rich, click nor pydantic on a clean run (what it saves).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scanbench.entry import FastAnalyze, parse_fast

PROBE = ("import sys, json\nsys.argv[0] = 'scanbench'\n"
         "import atexit\n"
         "atexit.register(lambda: sys.stderr.write('\\nMODULES ' + json.dumps(sorted(\n"
         "    m for m in sys.modules if m.split('.')[0] in ('typer', 'rich', 'click',\n"
         "                                                  'pydantic')))))\n"
         "from scanbench.{module} import main\nmain()\n")


def _run(module: str, *args: str) -> tuple[int, str, str, list[str]]:
    """Exit status, stdout, stderr and the Typer/rich/click/pydantic modules imported by
    ``scanbench ARGS`` run through ``scanbench.<module>.main`` in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", PROBE.format(module=module), *args],
                          capture_output=True, text=True, timeout=300)
    err, modules = done.stderr.rsplit("\nMODULES ", 1)
    return done.returncode, done.stdout, err, json.loads(modules)


def _same(*args: str) -> tuple[int, str, str, list[str]]:
    """Run ``args`` by the fast path and the full command line; assert the same output."""
    fast = _run("entry", *args)
    full = _run("cli", *args)
    assert fast[:3] == full[:3]
    return fast


@pytest.fixture(scope="module")
def pet_iq(shared_data: Path) -> Path:
    return shared_data / "pet" / "nema-iq-test-recon" / "pet_recon_1"


def test_real_pet_iq_same_json_without_typer_or_rich(pet_iq: Path) -> None:
    code, out, err, modules = _same("analyze", str(pet_iq), "--json",
                                    "-p", "activity_ratio=4", "--workers", "1")
    assert code == 0 and err == ""
    (result,) = json.loads(out)
    assert result["analysis"] == "pet.nema_nu2_2018.image_quality"
    assert modules == []  # the whole point: no Typer, rich, click or pydantic


def test_failed_skipped_and_no_series_same_messages_and_status(pet_iq: Path,
                                                               tmp_path: Path) -> None:
    # a PET series given a CT analysis: read, not analysed (exit 1, the reason on stderr)
    code, out, err, _ = _same("analyze", str(pet_iq), "--json", "-a", "ct.catphan")
    assert code == 1 and json.loads(out) == [] and "error:" in err
    empty = tmp_path / "empty [b]dir"
    empty.mkdir()
    (empty / "notes [red]x.txt").write_text("not DICOM")  # skipped, named with markup
    code, out, err, modules = _same("analyze", str(empty), "--json")
    assert code == 2 and json.loads(out) == []
    assert "note: skipped" in err and "[red]x.txt" in err  # shown, not read as markup
    assert "no DICOM image series found in" in err and "[b]dir" in err
    assert modules == []  # messages to a pipe are plain text: rich is not imported


AWKWARD = ["plain.dcm", "T2 [/b] and [red]x[/]", "back\\[slash]\\ x", "esc \x1b[31mred",
           "line\nbreak\rreturn\x7f", "ünïcödé 中文", "[", "]", "[/]", "{}"]


@pytest.mark.parametrize("value", AWKWARD)
def test_plain_messages_are_what_rich_prints_to_a_pipe(value: str,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    """print_err without rich (stderr not a terminal) writes exactly what the rich console
    it replaces wrote there, for every message form and outside text with markup, control
    characters, backslashes and braces."""
    import io

    from rich.console import Console

    from scanbench import entry
    from scanbench.console import PIPE_WIDTH, safe

    lines: list[tuple[str, object]] = [
        ("[dim]note: skipped {}: {}[/]", (value, "not DICOM " + value)),
        ("[red]error:[/] {}: {}", (value, value)),
        ("[red]error:[/] {}", value),
        ("[red]error:[/] no DICOM image series found in {}", [Path(value), value])]
    rich_out = io.StringIO()
    rich_err = Console(file=rich_out, soft_wrap=True, width=PIPE_WIDTH, force_terminal=False)
    for markup, values in lines:
        rich_err.print(entry._formatted(markup, values, safe))
    for name in entry._TERMINAL_ENV:
        monkeypatch.delenv(name, raising=False)
    entry.print_err(lines)
    assert capsys.readouterr().err == rich_out.getvalue()


def test_plain_messages_keep_names_as_written(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Where rich did not: a tab stays a tab (rich expands it to spaces), and a name
    ending in a backslash keeps one (``rich.markup.escape`` doubles it, and rich shows
    both unless a closing tag follows); an emoji code stays as written (as on the
    consoles, below)."""
    from scanbench import entry

    for name in entry._TERMINAL_ENV:
        monkeypatch.delenv(name, raising=False)
    entry.print_err([("[dim]note: skipped {}: {}[/]", ("a:warning:b.txt", "not DICOM")),
                     ("[red]error:[/] {}: {}", ("dir\\", "unreadable")),
                     ("[red]error:[/] {}", "a\tb")])
    assert capsys.readouterr().err == ("note: skipped a:warning:b.txt: not DICOM\n"
                                       "error: dir\\: unreadable\n"
                                       "error: a\tb\n")


def test_bad_usage_goes_to_the_full_command_line(tmp_path: Path) -> None:
    code, _, err, modules = _run("entry", "analyze", str(tmp_path / "missing"), "--json")
    assert code == 2 and "no such file or folder" in err and "typer" in modules
    code, _, err, _ = _same("analyze", str(tmp_path), "--json", "-a", "no.such.analysis")
    assert code == 2 and "no.such.analysis" in err


def test_parse_fast_takes_only_the_plain_json_form() -> None:
    assert parse_fast(["analyze", "a", "b", "--json", "-a", "x", "--param=k=1", "-p", "j=s",
                       "--workers=2"]) == FastAnalyze(
        paths=[Path("a"), Path("b")], analysis="x", params=["k=1", "j=s"], workers=2)
    for args in (["analyze", "a"],                          # no --json: the table
                 ["analyze", "--json"],                     # no path
                 ["analyze", "a", "--json", "--help"],
                 ["analyze", "a", "--json", "--report", "r.html"],
                 ["analyze", "a", "--json", "--spec", "earl1"],
                 ["analyze", "a", "--json", "-p", "novalue"],
                 ["analyze", "a", "--json", "--workers", "0"],
                 ["analyze", "a", "--json", "--workers", "²"],
                 ["analyze", "a", "--json", "-a"],
                 ["analyze", "a", "--json", "--", "b"],
                 ["analyses", "--json"]):
        assert parse_fast(args) is None, args


def test_console_script_is_the_fast_entry() -> None:
    """The installed ``scanbench`` and ``python -m scanbench`` start at scanbench.entry."""
    import tomllib

    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml")
                            .read_text())
    assert project["project"]["scripts"]["scanbench"] == "scanbench.entry:main"
    main_py = Path(__file__).resolve().parents[2] / "src" / "scanbench" / "__main__.py"
    assert "from scanbench.entry import main" in main_py.read_text()


@pytest.mark.parametrize("terminal", [True, False])
def test_consoles_never_turn_outside_text_into_emoji(terminal: bool,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """``:warning:`` in a file name or a DICOM description is shown as written on the
    command line's consoles, on a terminal too (rich's default would draw an emoji)."""
    from scanbench.console import console, safe

    for name in ("FORCE_TERMINAL", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "FORCE_COLOR",
                 "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    if terminal:
        monkeypatch.setenv("TTY_COMPATIBLE", "1")
    err = console(stderr=True)
    assert err.is_terminal is terminal
    err.print(f"[dim]note: skipped {safe('scan :warning: :smile:.txt')}[/]")
    assert ":warning: :smile:" in capsys.readouterr().err
