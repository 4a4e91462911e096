"""Global noise level of an axial clinical CT series (issue 16, CT part).

Methods, each reported under its own name (``labels={"method": ...}``):

- **Duke tissue mode** — Christianson O, Winslow J, Frush DP, Samei E. Automated
  technique to measure noise in clinical CT examinations. AJR 2015;205:W93–W99.
  A local-SD map (SD of the HU values in a square kernel around each pixel), kept
  where the pixel is soft tissue (HU window), and the global noise level (GNL) is the
  mode of the histogram of those local SDs.
- **Wisconsin tissue mean / mode** and **Wisconsin air mean / mode** — the variants
  compared with the Duke method in Weaver CM, Ge G, Alsalihi A, Zhang J. A comparative
  evaluation of CT global noise calculation methods for clinical image quality
  assessment. J Appl Clin Med Phys 2025 (doi 10.1002/acm2.70288), after Malkus A,
  Szczykutowicz TP. A method to extract image noise level from patient images in CT.
  Med Phys 2017 (doi 10.1002/mp.12240): the air variant measures the noise in
  the air around the patient as a surrogate of the noise within the patient; mean and
  mode are the mean and the mode of the local SDs.

Parameters the sources available to us did not let us confirm, chosen transparently
(each is a ``--param``): kernel 6 mm square (``kernel_mm``); soft-tissue window
0–100 HU (``tissue_low_hu``, ``tissue_high_hu``); histogram bin 0.1 HU (``bin_hu``);
for the Wisconsin variants the body is the largest connected region above −500 HU
(holes filled) and the tissue pixels are those of the soft-tissue window whose whole
kernel lies inside the body; the air pixels are below −900 HU, at least 10 mm outside
the body and the table, inside the reconstruction circle, with their whole kernel in
air. Published comparisons show that these variants differ from one another on
patients (the JACMP study found significant differences between all five); scanbench
reports every one and lets a specification choose.

Validity checks (the value is withheld, ``refused`` with the reason, where the method
does not apply): a lung or bone (sharp) reconstruction kernel, a contrast-enhanced
series when the header says so (Contrast/Bolus Agent (0018,0010)), and fewer than
``min_soft_tissue_cm2`` of soft tissue per slice on average. Beside the noise the
result reports the water-equivalent diameter (AAPM Report 220, central slice,
:mod:`scanbench.clinical.ssde`), CTDIvol, kVp, slice thickness, and the kernel (in
``parameters``).

Speed: the per-slice passes (local moments, body, masks, local SD, histograms) run in
one JIT-compiled kernel (:mod:`scanbench.quality.ct_noise_kernel`, numba, compiled once
and cached on disk), numpy's and scipy's arithmetic step by step, so the values are those
of the numpy form to the bit (``tests/ct_noise_reference.py``). Every step is in-plane
(per slice), so a long series is cut into runs of slices measured in up to one process
per core (:func:`measure_slices`, helpers forked from the calling process;
``SCANBENCH_CT_NOISE_PROCESSES``), the histograms added exactly and the sums slab by slab
in slice order: the values are the same to the bit as in one process.

Validation against virtual patients of known noise: ``docs/clinical-image-quality.md``.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import re
import signal
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from scanbench.analysis.base import FROM_HEADER, Parameter, result_for
from scanbench.analysis.registry import register
from scanbench.clinical.ssde import water_equivalent_diameter_slice
from scanbench.errors import AnalysisError
from scanbench.types import Measurement, Result, Series

DUKE = "Duke tissue mode"
WISCONSIN = ("Wisconsin tissue mean", "Wisconsin tissue mode", "Wisconsin air mean",
             "Wisconsin air mode")

# Reconstruction kernels for lung or bone: edge-enhancing, their noise is not the
# soft-tissue noise the methods were defined for. GE LUNG/BONE, Siemens B/Br/I 60-89,
# Canon FC5x/FC8x; a kernel named otherwise is measured (a site's naming can be added).
_SHARP_KERNEL = re.compile(
    r"LUNG|BONE|\bB[r]?(6|7|8)\d|\bI(6|7|8)\d|\bFC(5|8)\d", re.IGNORECASE)


def _opt_float(params: dict[str, Any], name: str, default: float) -> float:
    try:
        v = float(params.get(name, default))
    except (TypeError, ValueError) as exc:
        raise AnalysisError(f"--param {name}={params.get(name)!r} is not a number") from exc
    if not np.isfinite(v):
        raise AnalysisError(f"--param {name} must be finite")
    return v


def histogram_mode(values: np.ndarray, bin_width: float) -> float:
    """Centre of the most populated bin of a histogram of ``values`` (bins from 0)."""
    if values.size == 0:
        return float("nan")
    idx = np.floor(values / bin_width).astype(np.int64)
    idx = idx[idx >= 0]
    counts = np.bincount(idx)
    return (int(np.argmax(counts)) + 0.5) * bin_width


class SdHistogram:
    """Running histogram (bins of ``bin_width`` from 0), count and sum of local SDs, added
    slice by slice: the mode and the mean of every value added without keeping the values
    (a 500-slice 512² series held about 1 GB of them)."""

    def __init__(self, bin_width: float) -> None:
        self.bin_width = bin_width
        self.counts = np.zeros(0, dtype=np.int64)
        self.n = 0
        self.total = 0.0

    def add(self, values: np.ndarray) -> None:
        if values.size == 0:
            return
        self.n += int(values.size)
        self.total += float(values.sum(dtype=np.float64))
        idx = np.floor(values / self.bin_width).astype(np.int64)
        c = np.bincount(idx[idx >= 0])
        if c.size > self.counts.size:
            c[:self.counts.size] += self.counts
            self.counts = c
        else:
            self.counts[:c.size] += c

    def add_binned(self, counts: np.ndarray, n: int, total: float) -> None:
        """Add values already binned: ``counts`` per bin from 0, ``n`` values (the binned
        ones and any NaN), ``total`` their sum."""
        self.n += n
        self.total += float(total)
        if counts.size > self.counts.size:
            counts = counts.astype(np.int64)  # a copy: the caller's array is left alone
            counts[:self.counts.size] += self.counts
            self.counts = counts
        else:
            self.counts[:counts.size] += counts

    def mode(self) -> float:
        """As :func:`histogram_mode` of all the values added (NaN when none)."""
        if self.n == 0:
            return float("nan")
        return (int(np.argmax(self.counts)) + 0.5) * self.bin_width

    def mean(self) -> float:
        return self.total / self.n if self.n else float("nan")


# slices whose local moments are computed together
_SLAB = 4


#: process). Default: this process and one per idle core (:func:`processes`), as long as
#: each gets at least :data:`_MIN_SLICES_PER_PROCESS` slices.
ENV_PROCESSES = "SCANBENCH_CT_NOISE_PROCESSES"
# Below this many slices a process is not worth its start (a fork and a pipe: a few ms,
# about what 4 slices of 512² cost to measure).
_MIN_SLICES_PER_PROCESS = 32


def processes(n_slices: int | None = None) -> int:
    """The number of processes :func:`measure_slices` may use for ``n_slices`` slices:
    :data:`ENV_PROCESSES`, else 1 for a series too short to share, else :func:`idle_share`
    of the cores this process may run on and the cores other processes keep busy now
    (:func:`busy_cores`; the 1-minute load average where the kernel's counters cannot be
    read)."""
    value = os.environ.get(ENV_PROCESSES, "").strip()
    if value:
        try:
            n = int(value)
        except ValueError:
            raise AnalysisError(f"{ENV_PROCESSES}={value!r} is not a whole number") from None
        if n < 1:
            raise AnalysisError(f"{ENV_PROCESSES}={value!r}: at least 1 process is needed")
        return n
    if n_slices is not None and n_slices < 2 * _MIN_SLICES_PER_PROCESS:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    busy = busy_cores()
    if busy is None:
        try:
            busy = os.getloadavg()[0]
        except (AttributeError, OSError):  # no load average here: assume the cores idle
            busy = 0.0
    return idle_share(cores, busy)


#: how long :func:`busy_cores` watches the kernel's CPU counters (s): 5 clock ticks of
#: each core at Linux's usual 100 Hz, a small part of a series' measurement
BUSY_SAMPLE_S = 0.05


def cpu_counters(stat: str) -> tuple[int, int] | None:
    """(idle, total) clock ticks of all cores together from the text of ``/proc/stat``
    (its ``cpu`` line: user nice system idle iowait irq softirq steal ...; idle counts
    idle and iowait; guest time is already inside user, so only the first eight fields
    add up to the total); None if there is no such line."""
    for line in stat.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            ticks = [int(f) for f in fields[1:9]]
            return ticks[3] + ticks[4], sum(ticks)
    return None


def busy_cores(sample_s: float = BUSY_SAMPLE_S) -> float | None:
    """How many cores other processes keep busy now: the share of the machine's clock ticks
    not idle over ``sample_s`` seconds (this process sleeps meanwhile, so it counts only
    the others) times the online cores; None where ``/proc/stat`` cannot be read. Why not
    the 1-minute load average: it still holds what this process (or the analysis before
    it) did in the last minute, and on the bench a job whose process had just been busy
    measured in one process with the other core idle (bench/README.md,
    ``clinical_iq.py``)."""
    try:
        with open("/proc/stat") as f:
            before = cpu_counters(f.read())
        time.sleep(sample_s)
        with open("/proc/stat") as f:
            after = cpu_counters(f.read())
    except OSError:
        return None
    if before is None or after is None or after[1] <= before[1]:
        return None
    idle_share_now = (after[0] - before[0]) / (after[1] - before[1])
    return max(0.0, 1.0 - idle_share_now) * (os.cpu_count() or 1)


def idle_share(cores: int, load: float) -> int:
    """This process and one helper per core that others leave idle (``load``: the cores
    others keep busy): ``1 + round(cores - 1 - load)``, between 1 and ``cores``. Why not
    always every core: a helper on a core that another process keeps busy only takes turns
    with it (or with this process): measured on the 2-core bench machine while another
    session held a core, two processes took as long as one, with more CPU (bench/README.md,
    ``clinical_iq.py``). On the node, once a series is in, the core that received it is
    idle, so a 2-core node measures on both."""
    return max(1, min(cores, 1 + round(cores - 1 - load)))


@dataclass(frozen=True)
class _SlabSettings:
    """What :func:`_measure_range` needs besides the voxels (pixels, HU)."""

    size: int  # kernel side
    air_margin: int  # pixels between the air counted and anything above -900 HU
    low: float
    high: float
    bin_hu: float


@dataclass
class SlicePartial:
    """What a run of slices contributes to the three local-SD histograms: per class (0 soft
    tissue only, 1 soft tissue inside the body's kernel margin, 2 air) the counts per bin
    and the number of values, added as integers (exact in any order), and each slab's
    sums of local SDs per class, kept slab by slab so that they are added in the same
    order whatever processes measured them (floating-point addition is not associative:
    the means are then the same to the bit)."""

    counts: np.ndarray = field(default_factory=lambda: np.zeros((3, 0), dtype=np.int64))
    ns: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=np.int64))
    sums: list[tuple[float, float, float]] = field(default_factory=list)
    tissue_px: int = 0
    #: ids of the processes that measured these slices
    pids: set[int] = field(default_factory=set)

    def add_slab(self, counts: np.ndarray, ns: np.ndarray, sums: np.ndarray,
                 tissue_px: int) -> None:
        self._add_counts(counts)
        self.ns += ns.astype(np.int64)
        self.sums.append((float(sums[0]), float(sums[1]), float(sums[2])))
        self.tissue_px += tissue_px

    def _add_counts(self, counts: np.ndarray) -> None:
        if counts.shape[1] > self.counts.shape[1]:
            counts = counts.astype(np.int64)  # a copy: the caller's array is left alone
            counts[:, :self.counts.shape[1]] += self.counts
            self.counts = counts
        else:
            self.counts[:, :counts.shape[1]] += counts

    def extend(self, later: SlicePartial) -> None:
        """Append the partial of the slices that follow this one's."""
        self._add_counts(later.counts)
        self.ns += later.ns
        self.sums.extend(later.sums)
        self.tissue_px += later.tissue_px
        self.pids |= later.pids

    def histograms(self, bin_hu: float) -> tuple[SdHistogram, SdHistogram, SdHistogram]:
        """The Duke (classes 0 and 1), Wisconsin tissue (1) and Wisconsin air (2)
        histograms, their sums added slab by slab in slice order."""
        duke, wt, wa = SdHistogram(bin_hu), SdHistogram(bin_hu), SdHistogram(bin_hu)
        duke.counts = self.counts[0] + self.counts[1]
        wt.counts, wa.counts = self.counts[1].copy(), self.counts[2].copy()
        duke.n, wt.n, wa.n = (int(self.ns[0] + self.ns[1]), int(self.ns[1]),
                              int(self.ns[2]))
        for s0, s1, s2 in self.sums:
            duke.total += s0 + s1
            wt.total += s1
            wa.total += s2
        return duke, wt, wa


def _measure_range(vol: np.ndarray, k_begin: int, k_end: int,
                   cfg: _SlabSettings) -> SlicePartial:
    """The local-SD histograms of slices ``k_begin`` to ``k_end`` of ``vol`` (``k_begin`` a
    multiple of :data:`_SLAB`, so the slabs are the same whoever measures them), by the
    JIT-compiled kernel :func:`scanbench.quality.ct_noise_kernel.measure_run` (its
    docstring: the steps, each numpy's and scipy's arithmetic to the bit). Every step is
    in-plane (the kernel, the body, the morphology: per slice), so a run of slices needs
    nothing from the slices beyond its ends. The air is counted only inside the
    reconstruction circle shrunk by a kernel's side."""
    from scanbench.quality.ct_noise_kernel import measure_run  # numba: only when measuring

    rows, cols = vol.shape[1:]
    size = cfg.size
    yy, xx = np.mgrid[:rows, :cols]
    recon = (yy - (rows - 1) / 2) ** 2 + (xx - (cols - 1) / 2) ** 2 <= \
        ((min(rows, cols) / 2) - size) ** 2
    counts, ns, sums, tissue_px = measure_run(vol, k_begin, k_end, _SLAB, size,
                                              cfg.air_margin, cfg.low, cfg.high,
                                              cfg.bin_hu, recon)
    used = np.flatnonzero(counts.any(axis=0))
    return SlicePartial(counts=counts[:, :used[-1] + 1 if used.size else 0].copy(),
                        ns=ns, sums=[(float(a), float(b), float(c)) for a, b, c in sums],
                        tissue_px=int(tissue_px), pids={os.getpid()})


def _slice_runs(n_slices: int, n_proc: int, min_per_process: int = _MIN_SLICES_PER_PROCESS
                ) -> list[tuple[int, int]]:
    """Up to ``n_proc`` runs of whole slabs covering ``0 .. n_slices``, as even as slabs
    allow, each of at least ``min_per_process`` slices (fewer runs where they would not
    be)."""
    slabs = -(-n_slices // _SLAB)
    n_proc = max(1, min(n_proc, n_slices // max(1, min_per_process), slabs))
    edges = [min(n_slices, (slabs * i // n_proc) * _SLAB) for i in range(n_proc + 1)]
    return [(a, b) for a, b in itertools.pairwise(edges) if b > a]


def _helper(conn: Any, vol: np.ndarray, k_begin: int, k_end: int, cfg: _SlabSettings,
            parent: int) -> None:
    """A helper process's body: measure its run of slices, send the partial back. It
    dies with the process that started it (a node job killed on its timeout leaves no
    helper behind): Linux's parent-death signal, and a check that the parent had not
    already gone before the signal was asked for."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)
    try:
        answer: tuple[str, Any] = ("ok", _measure_range(vol, k_begin, k_end, cfg))
    except BaseException as exc:  # sent back: the caller measures the run itself
        answer = ("error", f"{type(exc).__name__}: {exc}")
    conn.send(answer)
    conn.close()


def measure_slices(vol: np.ndarray, cfg: _SlabSettings, n_proc: int = 1,
                   min_per_process: int = _MIN_SLICES_PER_PROCESS) -> SlicePartial:
    """The local-SD histograms of every slice of ``vol``, measured in up to ``n_proc``
    processes: the series is cut into runs of whole slabs, the first measured here, each
    other by a helper forked from this process (the voxels are shared, not copied), and
    the partials joined in slice order. Histogram counts add exactly; the sums are added
    slab by slab in the same order as in one process, so modes and means are the same to
    the bit however many processes measured. Where a helper cannot be started (no
    ``fork``, a daemonic process) or dies, its run is measured here."""
    runs = _slice_runs(vol.shape[0], n_proc, min_per_process)
    if len(runs) == 1 or "fork" not in multiprocessing.get_all_start_methods():
        return _measure_range(vol, 0, vol.shape[0], cfg)
    ctx = multiprocessing.get_context("fork")
    helpers: list[tuple[Any, Any, tuple[int, int]]] = []
    try:
        for run in runs[1:]:
            recv, send = ctx.Pipe(duplex=False)
            proc: Any = ctx.Process(target=_helper, args=(send, vol, *run, cfg, os.getpid()),
                                    name="scanbench-ct-noise")
            try:
                proc.start()
            except (AssertionError, OSError):  # daemonic (no children allowed), no memory
                recv.close()
                proc = None
            finally:
                send.close()
            helpers.append((proc, recv if proc is not None else None, run))
        part = _measure_range(vol, *runs[0], cfg)
        for _proc, recv, run in helpers:
            answer: tuple[str, Any] = ("error", "not started")
            if recv is not None:
                with contextlib.suppress(EOFError, OSError):
                    answer = recv.recv()
            part.extend(answer[1] if answer[0] == "ok" else _measure_range(vol, *run, cfg))
        return part
    finally:
        for proc, recv, _run in helpers:
            if recv is not None:
                recv.close()
            if proc is not None:
                if proc.is_alive():
                    proc.kill()
                proc.join()


def _contrast_agent(series: Series) -> str | None:
    """Contrast/Bolus Agent (0018,0010) of the first file, None when absent or unread."""
    if not series.files:
        return None
    try:
        import pydicom

        ds = pydicom.dcmread(series.files[0], stop_before_pixels=True,
                             specific_tags=[(0x0018, 0x0010)])
    except Exception:  # unreadable here: the series was read already, the tag is optional
        return None
    agent = str(ds.get("ContrastBolusAgent", "") or "").strip()
    return agent or None


@register
class ClinicalGlobalNoise:
    """CT global noise from a clinical series (module docstring)."""

    id: ClassVar[str] = "ct.clinical_global_noise"
    modality: ClassVar[str] = "CT"
    standard: ClassVar[str] = (
        "Christianson et al., AJR 2015;205:W93-W99 (global noise level, tissue mode); "
        "Wisconsin air/tissue variants as compared in J Appl Clin Med Phys 2025, "
        "doi 10.1002/acm2.70288 (see docs/standards/clinical-ct-noise.md#global-noise)")
    title: ClassVar[str] = "CT global noise from a clinical series"

    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("kernel_mm", "side of the square kernel of the local-SD map", "mm", 6.0),
        Parameter("tissue_low_hu", "lower end of the soft-tissue window", "HU", 0.0),
        Parameter("tissue_high_hu", "upper end of the soft-tissue window", "HU", 100.0),
        Parameter("bin_hu", "bin width of the local-SD histogram (mode)", "HU", 0.1),
        Parameter("min_soft_tissue_cm2", "least soft-tissue area per slice, on average, "
                  "below which the value is refused", "cm²", 20.0),
        Parameter("kernel", "reconstruction kernel; a lung or bone kernel is refused",
                  "", FROM_HEADER),
    )

    def detect(self, series: Series) -> float:
        """0: a measurement of patients, never chosen automatically (it would take any
        phantom series too); run it with ``--analysis ct.clinical_global_noise``."""
        return 0.0

    def run(self, series: Series, **params: Any) -> Result:
        if series.facts.modality != "CT":
            raise AnalysisError(f"{self.id} needs a CT series, not {series.facts.modality}",
                                series.uid)
        if series.shape[0] < 1 or min(series.shape[1:]) < 16:
            raise AnalysisError("the series is too small for a local-SD map", series.uid)
        kernel_mm = _opt_float(params, "kernel_mm", 6.0)
        low = _opt_float(params, "tissue_low_hu", 0.0)
        high = _opt_float(params, "tissue_high_hu", 100.0)
        bin_hu = _opt_float(params, "bin_hu", 0.1)
        min_cm2 = _opt_float(params, "min_soft_tissue_cm2", 20.0)
        if kernel_mm <= 0 or bin_hu <= 0 or high <= low:
            raise AnalysisError("kernel_mm and bin_hu must be positive and tissue_high_hu "
                                "above tissue_low_hu")
        ct = series.facts.ct
        kernel = str(params.get("kernel") or (ct.kernel if ct else None) or "") or None
        _dz, dy, dx = series.spacing
        px = float(np.sqrt(dy * dx))
        size = max(3, round(kernel_mm / px))
        air_margin = max(1, round(10.0 / px))

        cfg = _SlabSettings(size, air_margin, low, high, bin_hu)
        part = measure_slices(series.voxels, cfg, processes(series.voxels.shape[0]))
        duke, wt, wa = part.histograms(bin_hu)
        tissue_px = part.tissue_px

        result = result_for(self, series, parameters={
            "kernel_mm": kernel_mm, "kernel_pixels": size, "tissue_window_hu": [low, high],
            "bin_hu": bin_hu, "min_soft_tissue_cm2": min_cm2, "reconstruction_kernel": kernel})
        area_cm2 = tissue_px * dy * dx / 100.0 / series.shape[0]
        refusal = None
        if kernel and _SHARP_KERNEL.search(kernel):
            refusal = (f"reconstruction kernel {kernel!r} is a lung or bone kernel: the "
                       "global noise methods are defined for soft-tissue kernels")
        elif (agent := _contrast_agent(series)) is not None:
            refusal = (f"contrast-enhanced series (Contrast/Bolus Agent (0018,0010) "
                       f"{agent!r}): the soft-tissue window then takes enhancing organs")
        elif area_cm2 < min_cm2:
            refusal = (f"too few soft-tissue pixels: {area_cm2:.1f} cm² per slice between "
                       f"{low:g} and {high:g} HU, fewer than min_soft_tissue_cm2 = "
                       f"{min_cm2:g} cm²")

        values = {DUKE: duke.mode(), WISCONSIN[0]: wt.mean(), WISCONSIN[1]: wt.mode(),
                  WISCONSIN[2]: wa.mean(), WISCONSIN[3]: wa.mode()}
        counts = {DUKE: duke.n, WISCONSIN[0]: wt.n, WISCONSIN[1]: wt.n,
                  WISCONSIN[2]: wa.n, WISCONSIN[3]: wa.n}
        for method, value in values.items():
            m = result.add("global_noise_hu", value, "HU", labels={"method": method})
            if refusal:
                m.refuse(refusal)
            elif counts[method] == 0 or not np.isfinite(value):
                where = "air around the patient" if "air" in method else "soft tissue"
                m.refuse(f"no {where} far enough from edges for a {kernel_mm:g} mm kernel")
        result.add("soft_tissue_area_cm2", area_cm2, "cm²")
        self._header_measurements(result, series)
        if kernel:
            result.warnings.append(f"reconstruction kernel: {kernel}")
        return result

    @staticmethod
    def _header_measurements(result: Result, series: Series) -> None:
        """D_w from the image; CTDIvol, kVp, slice thickness from the header."""
        try:
            # the central slice only (AAPM Report 220's representative value), as
            # water_equivalent_diameter(series, "central") gives, without the other slices
            dy, dx = series.spacing[1:]
            dw = water_equivalent_diameter_slice(series.voxels[series.shape[0] // 2], dy * dx)
            result.add("water_equivalent_diameter_mm", dw, "mm")
        except AnalysisError as exc:
            m = Measurement("water_equivalent_diameter_mm", float("nan"), "mm")
            m.refuse(f"no water-equivalent diameter: {exc.message}")
            result.measurements.append(m)
        ct = series.facts.ct
        for name, unit, value in (
                ("ctdivol_mgy", "mGy", ct.ctdivol_mgy if ct else None),
                ("kvp", "kV", ct.kvp if ct else None),
                ("slice_thickness_mm", "mm", ct.slice_thickness_mm if ct else None)):
            if value is None:
                m = Measurement(name, float("nan"), unit)
                m.not_judged("not in the DICOM header")
                result.measurements.append(m)
            else:
                result.add(name, float(value), unit)

    def figures(self, result: Result) -> list[Any]:
        return []
