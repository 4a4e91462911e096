"""Errors scanbench raises on purpose. Each carries a message a physicist can act on;
the command line prints it (never a traceback) and maps it to an exit status."""

from __future__ import annotations

from pathlib import Path


class ScanbenchError(Exception):
    """Base class. ``where`` names the file, folder or series the problem is in."""

    def __init__(self, message: str, where: str | Path | None = None) -> None:
        self.message = message
        self.where = str(where) if where is not None else None
        super().__init__(f"{self.where}: {message}" if self.where else message)


class InputError(ScanbenchError):
    """The input cannot be read at all (missing path, not DICOM, truncated, corrupt)."""


class SeriesError(ScanbenchError):
    """A series was read but cannot form a volume (missing slices, uneven spacing, ...)."""


class AnalysisError(ScanbenchError):
    """A series could not be analysed: wrong phantom, missing header field, failed fit."""


class MissingTagError(AnalysisError):
    """An analysis needs a header field the series lacks; the message names the tag."""


class SpecError(ScanbenchError):
    """A specification file is invalid or names something unknown."""
