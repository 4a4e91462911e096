"""The ``scanbench`` console script: ``analyze ... --json`` in a script without Typer.

``scanbench analyze FOLDER --json`` run by a script or a pipeline (stderr not a terminal,
so no progress bar is drawn) needs neither Typer nor rich: Typer 0.29 builds a pydantic
``TypeAdapter`` for every parameter of the command it runs, and with rich and pydantic
that is about 0.14 s of a 0.9 s whole process on the 2-core benchmark machine
(bench/README.md, "Start-up and whole process"; issue 15). This module parses that one
form of the command line itself and runs the same analysis path; every other command
line (``--help``, another command, ``--spec``/``--baseline``/``--report``, a terminal on
stderr, anything it does not recognise or that is bad usage) goes to
:func:`scanbench.cli.main` unchanged. Output, messages and exit status are those of
:func:`scanbench.cli.analyze` (``tests/unit/test_cli_fast_path.py`` compares both on
real and broken input). Messages to stderr (not a terminal) are plain text: rich is never
imported.
"""

from __future__ import annotations

import gc
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2

# Environment variables that make rich treat stderr as a terminal (and so draw the
# progress bar the full command line shows there).
_TERMINAL_ENV = ("FORCE_TERMINAL", "TTY_INTERACTIVE", "TTY_COMPATIBLE", "FORCE_COLOR")


@dataclass
class FastAnalyze:
    """The arguments of an ``analyze ... --json`` command line this module runs itself."""

    paths: list[Path] = field(default_factory=list)
    analysis: str | None = None
    params: list[str] = field(default_factory=list)
    workers: int | None = None


def number_or_text(raw: str) -> Any:
    """A ``--param`` value: an int, else a float, else the text itself."""
    for conv in (int, float):
        try:
            return conv(raw)
        except ValueError:
            pass
    return raw


def parse_fast(args: list[str]) -> FastAnalyze | None:
    """``args`` (after the program name) as a :class:`FastAnalyze`, or None when the full
    command line must handle them: not ``analyze``, no ``--json``, an option other than
    ``--analysis/-a``, ``--param/-p``, ``--workers`` (each with its value) and ``--json``,
    a ``--param`` not ``KEY=VALUE``, a ``--workers`` below 1, or no path."""
    if args[:1] != ["analyze"]:
        return None
    out = FastAnalyze()
    as_json = False
    rest = args[1:]
    i = 0
    while i < len(rest):
        arg = rest[i]
        i += 1
        if not arg.startswith("-"):
            out.paths.append(Path(arg))
            continue
        if arg == "--json":
            as_json = True
            continue
        name, eq, value = arg.partition("=")
        if name not in ("--analysis", "-a", "--param", "-p", "--workers") or (
                eq and name in ("-a", "-p")):
            return None
        if not eq:
            if i >= len(rest) or rest[i].startswith("-"):
                return None
            value = rest[i]
            i += 1
        if name in ("--analysis", "-a"):
            if out.analysis is not None:
                return None
            out.analysis = value
        elif name in ("--param", "-p"):
            key, sep, _ = value.partition("=")
            if not sep or not key.strip():
                return None
            out.params.append(value)
        else:
            if not (value.isascii() and value.isdigit()) or int(value) < 1:
                return None
            out.workers = int(value)
    if not as_json or not out.paths:
        return None
    return out


def _stderr_is_terminal() -> bool:
    if any(os.environ.get(name) for name in _TERMINAL_ENV):
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return True


def run_fast(fast: FastAnalyze) -> int | None:
    """Run ``analyze --json``; the exit status, or None (nothing printed yet) when the full
    command line must run instead: a path that does not exist or an unknown analysis (bad
    usage, whose message the full command line prints)."""
    if any(not p.exists() for p in fast.paths):
        return None
    from scanbench.errors import ScanbenchError

    if fast.analysis:
        from scanbench.analysis.registry import get as get_analysis

        try:
            get_analysis(fast.analysis)
        except ScanbenchError:
            return None
    from scanbench import dicom  # noqa: F401 - every analysis reads (pydicom)
    from scanbench.api import analyze_paths

    # A short-lived process: the objects of the modules imported by now live as long as
    # it does, so the collector need not traverse them again and again (gc.freeze;
    # about 13 ms of eight PET series in one process, bench/README.md).
    gc.freeze()
    params: dict[str, Any] = {}
    for item in fast.params:  # as scanbench.cli.parse_params
        key, _, raw = item.partition("=")
        params[key.strip()] = number_or_text(raw.strip())
    try:
        rep = analyze_paths(fast.paths, analysis=fast.analysis, params=params,
                            workers=fast.workers)
    except ScanbenchError as exc:
        print_err([("[red]error:[/] {}", exc)])
        return EXIT_USAGE
    import json

    print_err(report_lines(rep))
    sys.stdout.write(json.dumps([r.to_dict() for r in rep.results], indent=1) + "\n")
    lines, status = outcome(rep, fast.paths)
    print_err(lines)
    return status


def report_lines(rep: Any) -> list[tuple[str, Any]]:
    """The stderr lines of an analysis report as ``(markup, values)``: one note per
    skipped file, one error per failure (shared by :func:`scanbench.cli.analyze`)."""
    lines: list[tuple[str, Any]] = []
    lines += [("[dim]note: skipped {}: {}[/]", (s.where, s.reason)) for s in rep.skipped]
    lines += [("[red]error:[/] {}: {}", (f.where, f.reason)) for f in rep.failures]
    return lines


def outcome(rep: Any, paths: list[Path]) -> tuple[list[tuple[str, Any]], int]:
    """The closing message (if any) and exit status of ``analyze`` after its output, as
    both command lines give them: nothing found at all is bad usage (2), nothing readable
    too; series read but none analysed, or any failure, is 1."""
    if not rep.results:
        if not rep.failures:
            return [("[red]error:[/] no DICOM image series found in {}", list(paths))], \
                EXIT_USAGE
        return [], EXIT_USAGE if rep.series_read == 0 else EXIT_FAILURES
    return [], EXIT_FAILURES if rep.failures else EXIT_OK


def print_err(lines: list[tuple[str, Any]]) -> None:
    """Print each ``(markup, values)`` to stderr, every value made inert (a list of paths
    joined by ", "): on a terminal (as rich sees it) through the stderr console of
    :mod:`scanbench.cli` with :func:`scanbench.console.safe`; otherwise as the plain text
    that console would print, the markup's style tags dropped and the values shown with
    :func:`scanbench.console.plain`, without importing rich (issue 15). Where they differ,
    plain text keeps outside text as it is: rich expanded a tab and showed a trailing
    backslash twice (``tests/unit/test_cli_fast_path.py``)."""
    if not lines:
        return
    if _stderr_is_terminal():
        from scanbench.console import console, safe

        err = console(stderr=True)
        for markup, values in lines:
            err.print(_formatted(markup, values, safe))
        return
    from scanbench.console import plain

    sys.stderr.write("".join(_formatted(_STYLE_TAG.sub("", markup), values, plain) + "\n"
                             for markup, values in lines))
    sys.stderr.flush()


#: The style tags of this module's own markup (``[red]``, ``[dim]``, ``[/]``).
_STYLE_TAG = re.compile(r"\[/?[a-z ]*\]")


def _formatted(template: str, values: Any, inert: Callable[[Any], str]) -> str:
    if isinstance(values, list):  # the paths of "no DICOM image series found"
        return template.format(", ".join(map(inert, values)))
    if isinstance(values, tuple):
        return template.format(*map(inert, values))
    return template.format(inert(values))


def main() -> None:
    """The ``scanbench`` console script."""
    try:
        _main()
    finally:
        # The process ends here. Freeze every object the collector tracks, so that the
        # interpreter's last collection at exit does not traverse them all once more
        # (about 36 ms after ``analyze --json`` of a folder, whose output is written by
        # then; bench/README.md). Atexit handlers still run; only finalizers of objects
        # left in reference cycles at exit may not, which Python never promises anyway.
        gc.freeze()


def _main() -> None:
    fast = parse_fast(sys.argv[1:])
    if fast is not None and not _stderr_is_terminal():
        try:
            status = run_fast(fast)
            if status is not None:
                sys.stdout.flush()
        except KeyboardInterrupt:  # as Typer: exit 130, no traceback
            sys.exit(130)
        except BrokenPipeError:  # as Typer: stdout closed by the reader, exit 1 quietly
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(1)
        if status is not None:
            sys.exit(status)
    from scanbench.cli import main as full_main

    full_main()
