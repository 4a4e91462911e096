"""The Analysis protocol every test implements (DESIGN.md, core types)."""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

from scanbench.types import Result, Series


@runtime_checkable
class Analysis(Protocol):
    """One standard test on one kind of phantom series.

    ``detect`` returns how sure (0..1) it is that the series is its phantom,
    cheaply and without raising. ``run`` measures and returns a Result, raising
    :class:`scanbench.errors.AnalysisError` with a clear message when it cannot.
    ``figures`` draws the checking figures from ``result.evidence`` on request.
    """

    id: ClassVar[str]
    modality: ClassVar[str]
    standard: ClassVar[str]
    title: ClassVar[str]

    def detect(self, series: Series) -> float: ...

    def run(self, series: Series, **params: Any) -> Result: ...

    def figures(self, result: Result) -> list[Any]: ...
