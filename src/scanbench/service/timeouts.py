"""How long a job of the node may run before it is stopped, per analysis class.

A job that runs longer than its timeout has its worker process killed and is recorded
as failed ("timed out after N s"); ``scanbench jobs retry`` runs it again. The timeout
of a job is chosen by the first rule that matches, in this order:

1. the analysis the series was routed to by its last job (a retry, a series that
   received late instances, a job interrupted by a stop): its id, or the longest
   matching pattern (``pet.nema_nu2_2018.*``, shell-style);
2. the series' modality (``CT``, ``MR``, ``PT``, ...) when no analysis has seen it yet
   (the job itself chooses the analysis);
3. ``study`` for a clinical study's dose and workflow job;
4. ``default``.

Where they come from, later ones winning: the built-in defaults below, the settings
file ``<home>/jobs.toml`` (table ``[timeouts]``), then ``--job-timeout RULE=SECONDS``
options of ``scanbench node``, ``ingest``, ``jobs run`` and ``jobs retry`` (a bare
``SECONDS`` sets ``default``)::

    [timeouts]
    default = 900
    PT = 1800
    "ct.catphan" = 600

The defaults are generous multiples of what the jobs take on the project's real and
simulated data (seconds to about a minute on one core); a slow disk or a very large
volume may need more, a busy node less.
"""

from __future__ import annotations

import fnmatch
import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from scanbench.errors import ScanbenchError

SETTINGS_FILE = "jobs.toml"

#: Built-in timeouts, s (module docstring).
DEFAULTS: dict[str, float] = {
    "default": 900.0,
    "study": 300.0,
    "PT": 1800.0,  # whole-body and long axial FOV PET volumes are the largest series
    "pet.nema_nu2_2018.*": 1800.0,
}


def _seconds(value: object, where: str, key: str) -> float:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ScanbenchError(f"timeout for {key!r} must be a number of seconds, not "
                             f"{value!r}", where) from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ScanbenchError(f"timeout for {key!r} must be a positive number of seconds, "
                             f"not {value!r}", where)
    return seconds


@dataclass(frozen=True)
class JobTimeouts:
    """Timeout rules: key (analysis id or pattern, modality, ``study``, ``default``) →
    seconds; ``sources`` says where they were read (for messages)."""

    rules: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULTS))
    sources: tuple[str, ...] = ("built-in defaults",)

    def for_job(self, kind: str, analysis: str | None = None,
                modality: str | None = None) -> tuple[float, str]:
        """The timeout of a job, s, and the rule that gave it (module docstring)."""
        if kind == "series" and analysis:
            if analysis in self.rules:
                return self.rules[analysis], analysis
            patterns = [k for k in self.rules if any(c in k for c in "*?[")
                        and fnmatch.fnmatchcase(analysis, k)]
            if patterns:
                best = max(patterns, key=len)
                return self.rules[best], best
        if kind == "series" and modality and modality in self.rules:
            return self.rules[modality], modality
        if kind == "study" and "study" in self.rules:
            return self.rules["study"], "study"
        return self.rules.get("default", DEFAULTS["default"]), "default"

    def merged(self, rules: Mapping[str, float], source: str) -> JobTimeouts:
        return JobTimeouts({**self.rules, **rules}, (*self.sources, source))

    @classmethod
    def load(cls, home: Path | None = None, options: Iterable[str] = ()) -> JobTimeouts:
        """The defaults, then ``<home>/jobs.toml`` if it exists, then ``options``
        (``RULE=SECONDS`` or ``SECONDS``). Bad input: ScanbenchError naming the file or
        the option and the problem."""
        out = cls()
        if home is not None:
            path = Path(home) / SETTINGS_FILE
            if path.exists():
                out = out.merged(read_settings(path), str(path))
        opts = list(options)
        if opts:
            out = out.merged(parse_options(opts), "--job-timeout")
        return out


def read_settings(path: Path) -> dict[str, float]:
    """The ``[timeouts]`` table of a settings file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScanbenchError(f"cannot read: {exc.strerror or exc}", str(path)) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ScanbenchError(f"not a valid TOML file: {exc}", str(path)) from None
    unknown = sorted(set(data) - {"timeouts"})
    if unknown:
        raise ScanbenchError(f"unknown table or key {', '.join(map(repr, unknown))} (this "
                             "file holds only [timeouts])", str(path))
    table = data.get("timeouts", {})
    if not isinstance(table, dict):
        raise ScanbenchError("'timeouts' must be a table of RULE = SECONDS", str(path))
    return {str(k): _seconds(v, str(path), str(k)) for k, v in table.items()}


def parse_options(options: Iterable[str]) -> dict[str, float]:
    """``--job-timeout`` values: ``RULE=SECONDS`` or a bare ``SECONDS`` (``default``)."""
    rules: dict[str, float] = {}
    for text in options:
        key, sep, value = text.rpartition("=")
        key = key.strip() if sep else "default"
        if sep and not key:
            raise ScanbenchError(f"{text!r}: expected RULE=SECONDS or SECONDS",
                                 "--job-timeout")
        rules[key] = _seconds(value.strip(), "--job-timeout", key)
    return rules
