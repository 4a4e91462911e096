"""Consoles of the command line and the one way outside text reaches them.

Outside text (DICOM attributes, file names, error messages that quote them, job
summaries from the store) is untrusted (DESIGN.md, "Rules that keep it safe to
change"): rich would read ``T2 [/b]`` as markup and crash, cut ``T1 [post contrast]``
to ``T1 `` and pass a terminal escape such as ``\\x1b[31m`` straight to the
terminal. :func:`safe` makes such text inert for rich markup; :func:`plain` makes it
inert for a terminal or a log file (control characters shown as ``\\xNN``).

When stdout or stderr is not a terminal (a log file, a pipe, a CI job), lines are
never hard-wrapped: a message stays on one line so that it can be searched, and a
line break never falls inside a phrase. Tables keep a fixed width of 132 columns.

rich itself is imported when a console, markup or a rich text is asked for: :func:`plain`
alone (a message to a log file or a pipe) does not need it (issue 15: ``analyze --json``
in a script prints its notes without importing rich, about 13 ms).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

#: C0 controls except tab and newline, DEL, and the C1 controls (ECMA-48 section 5):
#: the bytes a terminal interprets (ESC starts a control sequence, CR rewrites a line).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_AND_NEWLINE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")

#: Width of tables when the output is not a terminal.
PIPE_WIDTH = 132


def plain(value: Any, *, newlines: bool = True) -> str:
    """``str(value)`` with every control character but tab and (if ``newlines``) newline
    shown as ``\\xNN``."""
    pattern = _CONTROL if newlines else _CONTROL_AND_NEWLINE
    return pattern.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))


def safe(value: Any) -> str:
    """Outside text made inert for rich markup and for the terminal: control characters
    shown as ``\\xNN`` (:func:`plain`), square brackets escaped (``rich.markup.escape``)."""
    from rich.markup import escape

    return escape(plain(value))


def text(value: Any, style: str = "") -> Text:
    """Outside text as a rich :class:`~rich.text.Text` (never parsed as markup), e.g. a
    table cell."""
    from rich.text import Text

    return Text(plain(value), style=style)


def console(*, stderr: bool = False) -> Console:
    """The console for stdout (results, tables) or stderr (messages, progress).

    Not a terminal: no hard wrap of printed lines (``soft_wrap``) and tables
    :data:`PIPE_WIDTH` columns wide, whatever the ``COLUMNS`` of the calling shell.
    Never emoji codes: ``:warning:`` in a file name or a DICOM description is shown as
    written, not as an emoji (:func:`safe` escapes markup, not emoji codes).
    """
    from rich.console import Console

    probe = Console(stderr=stderr, emoji=False)
    if probe.is_terminal:
        return probe
    return Console(stderr=stderr, soft_wrap=True, width=PIPE_WIDTH, emoji=False)


class PlainFormatter(logging.Formatter):
    """A log formatter for outside text: a message is one line without control
    characters (a DICOM description or AE title holding a terminal escape or a line
    break can neither drive the terminal nor forge a second log line); tracebacks
    keep their lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = plain(record.message, newlines=False)
        return super().formatMessage(record)


def configure_logging(level: int = logging.WARNING,
                      fmt: str = "%(levelname)s %(name)s: %(message)s") -> None:
    """Log to stderr through :class:`PlainFormatter` (``logging.basicConfig``: a no-op
    when the program, or a test harness, has configured logging already)."""
    handler = logging.StreamHandler()
    handler.setFormatter(PlainFormatter(fmt))
    logging.basicConfig(level=level, handlers=[handler])
