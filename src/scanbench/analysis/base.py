"""The Analysis protocol every test implements (DESIGN.md, core types)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from scanbench.errors import ScanbenchError
from scanbench.types import Result, Series

# What ``Parameter.default`` says when there is no fixed default value.
REQUIRED = "required"
MEASURED = "measured if absent"
FROM_HEADER = "from the DICOM header if absent"


@dataclass(frozen=True)
class Parameter:
    """One ``--param NAME=VALUE`` an analysis accepts, described for people and tools.

    Purely descriptive: ``run()`` reads and checks its own parameters; this says what
    they mean (``scanbench analyses`` prints it, a protocol can be checked against it).
    ``default`` is the value used when the parameter is absent, or one of the words
    :data:`REQUIRED`, :data:`MEASURED`, :data:`FROM_HEADER` (or a short phrase saying
    what happens instead); ``unit`` is empty for a pure number or a word.
    """

    name: str
    description: str
    unit: str = ""
    default: float | int | str | None = None

    def default_text(self) -> str:
        """The default as shown to a user: a number, a word, or "none" (optional)."""
        if self.default is None:
            return "none (optional)"
        if isinstance(self.default, float):
            return f"{self.default:g}"
        return str(self.default)


def parameters_of(analysis: object) -> tuple[Parameter, ...]:
    """The parameters an analysis declares (empty when it takes none)."""
    return tuple(getattr(analysis, "parameters", ()))


@runtime_checkable
class Analysis(Protocol):
    """One standard test on one kind of phantom series.

    ``detect`` returns how sure (0..1) it is that the series is its phantom,
    cheaply and without raising. ``run`` measures and returns a Result, raising
    :class:`scanbench.errors.AnalysisError` with a clear message when it cannot.
    ``figures`` draws the checking figures from ``result.evidence`` on request.
    ``parameters`` (a class attribute, read with :func:`parameters_of`) describes the
    ``--param`` values ``run`` accepts; ``standard`` names the standard, edition and
    clause the analysis implements, with the project's reference page for it.
    """

    id: ClassVar[str]
    modality: ClassVar[str]
    standard: ClassVar[str]
    title: ClassVar[str]

    def detect(self, series: Series) -> float: ...

    def run(self, series: Series, **params: Any) -> Result: ...

    def figures(self, result: Result) -> list[Any]: ...


def result_for(analysis: Analysis, series: Series, **fields: Any) -> Result:
    """An empty Result of ``analysis`` about ``series``: its id and standard, the
    series UID, the device and acquisition time from the header; ``fields`` sets
    any other Result field (``parameters``, ``source``)."""
    return Result(analysis=analysis.id, standard=analysis.standard,
                  series_instance_uid=series.uid, device=series.facts.device,
                  acquired_at=series.facts.acquired_at, **fields)


@runtime_checkable
class GroupAnalysis(Analysis, Protocol):
    """An analysis that needs several series at once (the multi-series hook).

    Some tests cannot be done on one series: the ACR MRI suite needs the axial
    T1/T2 series together with the sagittal localiser, the NEMA MS 1 difference
    method needs two identical acquisitions, PET/CT co-registration needs a PET
    and its CT. Such an analysis adds two methods to :class:`Analysis`:

    - ``group(series)`` is offered every series read in one ``analyze`` call
      (that no other group has claimed yet) and returns the groups it can
      analyse, each a tuple of series, e.g. ``(t1, t2, localiser)``. It must be
      cheap and never raise; a series it does not recognise is left out, and a
      group may hold one series when a partner is missing (the analysis then
      says in its results what could not be run, and why).
    - ``run_group(group, **params)`` measures one group and returns its results
      (any number, one per test and series), or raises
      :class:`scanbench.errors.ScanbenchError` naming the problem. When only part
      of a group fails (one test, or one series of it), the list may also hold
      ScanbenchError instances (``where`` naming the series): each becomes a
      named failure while the results beside it are kept.

    How :func:`scanbench.api.analyze_paths` uses it: with ``--analysis`` naming
    a group analysis, the series are grouped by it alone and every series it
    does not group is a failure saying so. Without ``--analysis`` every
    registered group analysis proposes groups, the larger groups are taken
    first (a suite of T1, T2 and localiser before a pair), a series belongs to
    at most one group, and every series left over is analysed on its own by the
    most confident single-series analysis, exactly as before.

    ``detect(series)`` keeps its single-series meaning; a group analysis that
    should never be picked for one series alone returns 0 there.
    """

    def group(self, series: Sequence[Series]) -> list[tuple[Series, ...]]: ...

    def run_group(self, group: tuple[Series, ...], **params: Any
                  ) -> Sequence[Result | ScanbenchError]: ...


def is_group_analysis(analysis: object) -> bool:
    """Whether ``analysis`` implements the multi-series hook (:class:`GroupAnalysis`)."""
    return callable(getattr(analysis, "group", None)) and \
        callable(getattr(analysis, "run_group", None))
