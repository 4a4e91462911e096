"""Time-of-flight resolution from list mode of the line source, NEMA NU 2-2018 (TOF clause).

Procedure (STANDARDS.md A.6; the histogram details are [U] there and stated as
choices here):

1. **Events.** Prompt list-mode events of each frame (delayed-window events are
   left out when flagged), with the two crystals of every coincidence and its
   arrival-time difference ``t_a - t_b``.
2. **Source position along each LOR.** The line source runs parallel to the
   axis at ``(line_x_mm, line_y_mm)`` (the file's phantom record, or
   ``line_mm=x,y``). Only LORs passing within ``band_mm`` (20 mm, the NEMA
   count-rate band) of the line in the transverse plane are used. For each, the
   point of the LOR closest to the line is where the annihilation happened for a
   true coincidence; its expected time difference is ``(d_a - d_b) / c`` with
   ``d`` the distances to the two crystal centres. The residual
   ``t_a - t_b - (d_a - d_b) / c`` is the timing error of the event.
3. **Histogram.** Residuals are histogrammed in ``bin_ps`` bins (default FWHM/20)
   over the coincidence window. Randoms and scatter form a broad pedestal; a
   straight line fitted to the histogram between 2.5 and 5 FWHM from the peak
   on both sides (FWHM from a first pass) is subtracted.
4. **Width.** The FWHM of the background-subtracted histogram: the peak value
   from a Gaussian fitted within half a FWHM of the maximum ([U]: "peak fit"),
   the half-maximum crossings by linear interpolation as in NU 2 section 3, each
   refined by a parabola through the bins within 0.25 FWHM of it (the noise of
   ten bins rather than two; the same crossing for a noiseless profile).

Reported per frame: ``tof_resolution_ps`` labelled with the frame and the
activity concentration (from the frame's ``activity_concentration_kbq_ml`` or
the phantom's decayed activity over its volume), and ``events_used``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from scanbench.analysis.base import Parameter
from scanbench.analysis.pet.spatial_resolution import crossings, nema_width
from scanbench.analysis.registry import register
from scanbench.errors import AnalysisError
from scanbench.rawdata import SPEED_OF_LIGHT_MM_PER_PS, Events, RawDataset, ScannerGeometry
from scanbench.rawdata.analysis import RawOnly, common_parameters, float_param
from scanbench.types import Result

DEFAULT_BAND_MM = 20.0
PEDESTAL_ORDER = 2


def tof_residuals(events: Events, geometry: ScannerGeometry, line_xy: tuple[float, float],
                  band_mm: float) -> np.ndarray:
    """Residual time differences (ps) of the events whose LOR passes within ``band_mm``
    of the axial line at ``line_xy``, after removing the expected difference for an
    annihilation on the line (the LOR point closest to the line)."""
    keep = np.ones(len(events), dtype=bool) if events.delayed is None else ~events.delayed
    xa, ya = geometry.crystal_xy_mm(events.crystal_a[keep])
    xb, yb = geometry.crystal_xy_mm(events.crystal_b[keep])
    za = geometry.ring_z_mm(events.ring_a[keep])
    zb = geometry.ring_z_mm(events.ring_b[keep])
    tof = np.asarray(events.tof_ps, dtype=float)[keep]
    dx, dy, dz = xb - xa, yb - ya, zb - za
    t2 = dx * dx + dy * dy
    ok = t2 > 1e-9
    x0, y0 = line_xy
    # transverse foot of the perpendicular from the line onto the LOR
    s = np.where(ok, ((x0 - xa) * dx + (y0 - ya) * dy) / np.where(ok, t2, 1.0), 0.5)
    px, py = xa + s * dx, ya + s * dy
    dist = np.hypot(px - x0, py - y0)
    sel = ok & (dist <= band_mm) & (s > 0) & (s < 1)
    length = np.sqrt(t2 + dz * dz)
    d_a = s * length
    d_b = (1.0 - s) * length
    expected = (d_a - d_b) / SPEED_OF_LIGHT_MM_PER_PS
    return (tof - expected)[sel]


def histogram_fwhm(residuals: np.ndarray, bin_ps: float | None, window_ps: float
                   ) -> tuple[float, dict[str, Any]]:
    """FWHM (ps) of the residual histogram after a linear pedestal is removed.

    A first pass in 10 ps bins gives the approximate width; the histogram is then
    made in ``bin_ps`` bins (default FWHM/20). The peak value is the vertex of a
    Gaussian (a parabola in log counts, weighted by the counts) fitted within half a
    FWHM of the maximum: the three-bin parabola of the spatial-resolution rule is
    biased upwards by the noise of the highest bin when a histogram has many bins
    across its peak. Half-maximum crossings are linearly interpolated (NU 2 rule).
    """
    res = residuals[np.abs(residuals) <= window_ps / 2]
    rough_edges = np.arange(-window_ps / 2, window_ps / 2 + 10.0, 10.0)
    rough, _ = np.histogram(res, bins=rough_edges)
    first = nema_width(rough.astype(float), 10.0)
    if first is None:
        raise AnalysisError("the TOF residual histogram has no clear peak")
    fwhm0 = first.fwhm_mm
    step = float(bin_ps) if bin_ps else max(1.0, fwhm0 / 20.0)
    edges = np.arange(-window_ps / 2, window_ps / 2 + step, step)
    hist, _ = np.histogram(res, bins=edges)
    centres = (edges[:-1] + edges[1:]) / 2
    h = hist.astype(float)
    peak_t = first.peak_mm + rough_edges[0] + 5.0
    base = np.zeros_like(h)
    off = np.abs(centres - peak_t)
    side = (off >= 2.5 * fwhm0) & (off <= 5.0 * fwhm0)
    if side.sum() >= 4:
        coef = np.polyfit(centres[side] - peak_t, h[side], PEDESTAL_ORDER)
        base = np.polyval(coef, centres - peak_t)
    net = h - base
    core = (np.abs(centres - peak_t) <= 0.5 * fwhm0) & (net > 0)
    if core.sum() < 3:
        raise AnalysisError("too few histogram bins across the TOF peak")
    c2, c1, c0 = np.polyfit(centres[core], np.log(net[core]), 2, w=np.sqrt(net[core]))
    if not c2 < 0:
        raise AnalysisError("the TOF residual histogram has no peak to fit")
    t_peak = -c1 / (2 * c2)
    peak_value = float(np.exp(c0 - c1 * c1 / (4 * c2)))
    imax = int(np.argmin(np.abs(centres - t_peak)))
    half = 0.5 * peak_value
    cross = crossings(net, imax, half)
    if cross is None:
        raise AnalysisError("the TOF residual histogram does not fall to half its peak")
    lo, hi = (centres[0] + c * step for c in cross)
    # Refine each crossing with a parabola fitted to the bins within 0.25 FWHM of it:
    # the two-bin interpolation of the NU 2 rule has the noise of two bins (a few ps with
    # FWHM/20 bins); the local parabola uses ten and follows the profile's curvature.
    refined = []
    for t_c in (lo, hi):
        near = np.abs(centres - t_c) <= 0.25 * fwhm0
        if near.sum() >= 5:
            q = np.polyfit(centres[near] - t_c, net[near], 2)
            q[-1] -= half
            roots = np.roots(q)
            roots = roots[np.isreal(roots)].real
            if roots.size and np.min(np.abs(roots)) < 0.25 * fwhm0:
                t_c = t_c + float(roots[np.argmin(np.abs(roots))])
        refined.append(float(t_c))
    lo, hi = refined
    return hi - lo, {"centres_ps": centres, "counts": h, "background": base,
                     "peak_ps": t_peak, "half_ps": (lo, hi), "peak_value": peak_value,
                     "bin_ps": step}


def _line_xy(dataset: RawDataset, params: dict[str, Any]) -> tuple[float, float]:
    if "line_mm" in params:
        try:
            x, y = (float(v) for v in str(params["line_mm"]).split(","))
            return x, y
        except ValueError:
            raise AnalysisError(f"line_mm must be 'x,y' in mm, got {params['line_mm']!r}") from None
    p = dataset.phantom
    if "line_x_mm" in p and "line_y_mm" in p:
        return float(p["line_x_mm"]), float(p["line_y_mm"])
    raise AnalysisError("the line source position is not in the file (/phantom line_x_mm, "
                        "line_y_mm); give --param line_mm=x,y (scanner coordinates, mm)",
                        dataset.where)


@register
class TofResolution(RawOnly):
    """NEMA NU 2-2018: coincidence timing (TOF) resolution from list mode."""

    id: ClassVar[str] = "pet.nema_nu2_2018.tof_resolution"
    modality: ClassVar[str] = "PT"
    standard: ClassVar[str] = (
        "NEMA NU 2-2018: time-of-flight resolution test, new in the 2018 edition, on the list-mode"
        " data of the scatter phantom (see "
        "docs/standards/nema-nu2-2018.md#time-of-flight-resolution)")
    title: ClassVar[str] = "PET time-of-flight resolution (line-source list mode)"

    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("line_mm", "x,y of the line source in the transverse plane", "mm",
                  "from the file's phantom description; required if it has none"),
        Parameter("band_mm", "events whose line of response passes within this distance of "
                  "the line source are used", "mm", 20.0),
        Parameter("bin_ps", "histogram bin width", "ps", "one twentieth of a first FWHM "
                  "estimate"),
    )

    def detect_raw(self, dataset: RawDataset) -> float:
        if dataset.kind != "listmode":
            return 0.0
        return 0.95 if dataset.purpose in ("tof", "count_rate", None) else 0.6

    def run_raw(self, dataset: RawDataset, **params: Any) -> Result:
        line = _line_xy(dataset, params)
        band = float_param(params, "band_mm", DEFAULT_BAND_MM) or DEFAULT_BAND_MM
        bin_ps = float_param(params, "bin_ps", None)
        window = float(dataset.geometry.coincidence_window_ps or 4000.0)
        result = Result(analysis=self.id, standard=self.standard, series_instance_uid=None,
                        device=dataset.device, acquired_at=dataset.acquired_at,
                        source=dataset.where)
        frames = [f for f in dataset.frames if f.n_events > 0]
        if not frames:
            raise AnalysisError("no list-mode events in the file", dataset.where)
        volume = dataset.phantom.get("volume_ml")
        hists = []
        for f in frames:
            res = tof_residuals(dataset.events(f.index), dataset.geometry, line, band)
            if len(res) < 1000:
                raise AnalysisError(f"frame {f.index}: only {len(res)} events pass within "
                                    f"{band:g} mm of the line source at {line}; is the line "
                                    "position right?", dataset.where)
            fwhm, hist = histogram_fwhm(res, bin_ps, window)
            conc = f.attrs.get("activity_concentration_kbq_ml")
            if conc is None and volume:
                a = dataset.mean_activity_bq(f)
                conc = a / float(volume) / 1000.0 if a is not None else None
            lab: dict[str, Any] = {"frame": f.index}
            if conc is not None:
                lab["activity_kbq_ml"] = round(float(conc), 3)
            result.add("tof_resolution_ps", fwhm, "ps", labels=dict(lab),
                       uncertainty=fwhm / math.sqrt(max(len(res), 1)) * 1.2)
            result.add("events_used", float(len(res)), "1", labels=dict(lab))
            hists.append({"label": lab, "fwhm_ps": fwhm, **hist})
        result.parameters = {**common_parameters(dataset), "line_mm": list(line),
                             "band_mm": band, "bin_ps": bin_ps or "FWHM/20",
                             "background": "linear fit 2.5-5 FWHM from the peak"}
        result.evidence = {"histograms": hists}
        return result

    def figures(self, result: Result) -> list[Any]:
        """The residual histogram per frame with the pedestal and the half-maximum width."""
        import plotly.graph_objects as go

        figs = []
        for h in result.evidence.get("histograms", []):
            fig = go.Figure()
            fig.add_trace(go.Bar(x=h["centres_ps"], y=h["counts"], name="events"))
            fig.add_trace(go.Scatter(x=h["centres_ps"], y=h["background"], mode="lines",
                                     name="scatter + randoms pedestal"))
            hm = h["peak_value"] / 2
            fig.add_trace(go.Scatter(x=list(h["half_ps"]), y=[hm, hm], mode="lines+markers",
                                     name=f"FWHM {h['fwhm_ps']:.1f} ps"))
            fig.update_layout(title=f"TOF residuals, frame {h['label'].get('frame')}: "
                                    f"FWHM {h['fwhm_ps']:.1f} ps",
                              xaxis_title="t_a - t_b - expected (ps)", yaxis_title="events",
                              xaxis_range=[-4 * h["fwhm_ps"], 4 * h["fwhm_ps"]])
            figs.append(fig)
        return figs
