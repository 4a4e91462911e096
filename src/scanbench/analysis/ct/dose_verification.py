"""CTDIvol verification: pencil-chamber measurements in a CTDI phantom against the console.

STANDARDS.md B.2 (definitions [C]; IEC 60601-2-44):

- CTDI100 is measured with a 100 mm pencil ionisation chamber in the centre
  and the peripheral holes (12, 3, 6, 9 o'clock) of the 16 cm (head) or 32 cm
  (body) PMMA phantom, for a **single axial rotation** at the protocol's kVp,
  mA, rotation time and nominal beam collimation N·T;
  CTDI100 = chamber air-kerma–length reading (mGy·cm) / (N·T in cm). Give the
  CTDI100 values (``centre_mgy``, ``periphery_mgy`` — one value, or the four
  peripheral values, which are averaged); or the raw readings
  (``centre_mgycm``, ``periphery_mgycm``) with ``collimation_mm`` (N·T; default
  the header's Total Collimation Width).
- CTDIw = (1/3) CTDI100,centre + (2/3) mean CTDI100,periphery;
- CTDIvol = CTDIw / pitch (helical; default the header's Spiral Pitch Factor);
  for an axial series, pitch = table increment / N·T (``pitch`` parameter,
  else 1 — contiguous axial scanning — with a warning);
- if the measurement was made at a different mAs per rotation than the
  series (``measured_mas``), CTDI scales linearly with mAs: the measured
  CTDIvol is scaled by the series' mAs per rotation (Exposure, (0018,1152)) /
  ``measured_mas``.

``ctdivol_deviation_percent`` = 100 × (displayed − measured) / measured, the
console's error relative to the measurement. The phantom diameter
(``phantom_diameter_cm``, default the header's CTDI Phantom Type) must match
the one the console's CTDIvol refers to; a mismatch is an error. Tolerances
(±20 % commonly, ±10 % in Chinese acceptance testing) are [U] and belong in a
spec. With tube-current modulation the displayed CTDIvol is the series mean,
which a fixed-mA chamber measurement does not reproduce: a warning says so.
"""

from __future__ import annotations

from typing import Any, ClassVar

from scanbench.analysis.base import Parameter, result_for
from scanbench.analysis.ct.common import series_where
from scanbench.analysis.registry import register
from scanbench.errors import AnalysisError, MissingTagError
from scanbench.types import Result, Series


def _floats(value: Any, name: str) -> list[float]:
    try:
        if isinstance(value, int | float):
            out = [float(value)]
        else:
            out = [float(v) for v in str(value).replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise AnalysisError(f"{name} must be a number or comma-separated numbers, got "
                            f"{value!r}") from None
    if not out or any(v <= 0 for v in out):
        raise AnalysisError(f"{name} must be positive, got {value!r}")
    return out


@register
class CtdiVerification:
    """Measured CTDIvol (pencil chamber) against the console's displayed CTDIvol."""

    id: ClassVar[str] = "ct.dose_verification"
    modality: ClassVar[str] = "CT"
    standard: ClassVar[str] = (
        "IEC 60601-2-44 (edition 3) CTDI definitions: CTDIw = 1/3 centre + 2/3 periphery, CTDIvol "
        "= CTDIw / pitch, compared with the displayed CTDIvol (see "
        "docs/standards/iec-aapm-ct.md#ctdi-and-displayed-ctdivol)")
    title: ClassVar[str] = "CTDIvol verification against the console"

    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("centre_mgy", "CTDI100 measured in the centre hole", "mGy",
                  "required (or centre_mgycm)"),
        Parameter("periphery_mgy", "CTDI100 in the peripheral holes: one mean or the four "
                  "values, comma-separated", "mGy", "required (or periphery_mgycm)"),
        Parameter("centre_mgycm", "pencil-chamber reading in the centre hole (dose-length "
                  "integral over 100 mm)", "mGy·cm", None),
        Parameter("periphery_mgycm", "pencil-chamber readings in the peripheral holes",
                  "mGy·cm", None),
        Parameter("collimation_mm", "total nominal beam collimation N·T, to turn readings "
                  "into CTDI100", "mm", "from Total Collimation Width (0018,9307) if absent"),
        Parameter("phantom_diameter_cm", "CTDI phantom used: 16 (head) or 32 (body)", "cm",
                  "from CTDI Phantom Type Code Sequence (0018,9346) if absent"),
        Parameter("pitch", "pitch factor", "",
                  "from Spiral Pitch Factor (0018,9311), else 1 with a warning"),
        Parameter("measured_mas", "tube current-time product of the measurement, when it "
                  "differs from the series'", "mAs", "the series' mAs"),
    )

    def detect(self, series: Series) -> float:
        return 0.0  # needs chamber readings: run with --analysis ct.dose_verification

    def run(self, series: Series, **params: Any) -> Result:
        where = series_where(series)
        ct = series.facts.ct
        if series.facts.modality != "CT" or ct is None:
            raise AnalysisError("dose verification needs a CT series", where)
        if ct.ctdivol_mgy is None:
            raise MissingTagError("CTDIvol (0018,9345) is missing: the console's displayed "
                                  "CTDIvol cannot be compared", where)
        result = result_for(self, series)
        if "centre_mgy" in params or "periphery_mgy" in params:
            if "centre_mgy" not in params or "periphery_mgy" not in params:
                raise AnalysisError("give both centre_mgy and periphery_mgy (CTDI100, mGy)",
                                    where)
            centre = _floats(params["centre_mgy"], "centre_mgy")[0]
            periphery_values = _floats(params["periphery_mgy"], "periphery_mgy")
            source = "CTDI100 values given"
        elif "centre_mgycm" in params and "periphery_mgycm" in params:
            nt = params.get("collimation_mm", ct.total_collimation_mm)
            if nt is None:
                raise MissingTagError("Total Collimation Width (0018,9307) is missing: give "
                                      "collimation_mm (N·T) to turn the readings into CTDI100",
                                      where)
            nt_cm = _floats(nt, "collimation_mm")[0] / 10.0
            centre = _floats(params["centre_mgycm"], "centre_mgycm")[0] / nt_cm
            periphery_values = [v / nt_cm for v in _floats(params["periphery_mgycm"],
                                                           "periphery_mgycm")]
            source = f"chamber readings / N·T = {10 * nt_cm:g} mm"
        else:
            raise AnalysisError(
                "no chamber measurement given: --param centre_mgy=... --param periphery_mgy=... "
                "(CTDI100 in mGy; periphery one value or the four holes comma-separated), or "
                "centre_mgycm / periphery_mgycm readings with collimation_mm", where)
        if len(periphery_values) not in (1, 4):
            result.warnings.append(f"{len(periphery_values)} peripheral values averaged "
                                   "(the phantom has 4 peripheral holes)")
        periphery = sum(periphery_values) / len(periphery_values)
        phantom = params.get("phantom_diameter_cm")
        if phantom is None:
            if ct.ctdi_phantom_cm is None:
                raise MissingTagError("CTDI Phantom Type Code Sequence (0018,9346) is missing: "
                                      "give phantom_diameter_cm (16 or 32)", where)
            phantom_cm = ct.ctdi_phantom_cm
        else:
            phantom_cm = int(_floats(phantom, "phantom_diameter_cm")[0])
            if phantom_cm not in (16, 32):
                raise AnalysisError(f"phantom_diameter_cm must be 16 or 32, got {phantom}",
                                    where)
            if ct.ctdi_phantom_cm is not None and ct.ctdi_phantom_cm != phantom_cm:
                raise AnalysisError(
                    f"the measurement was made in the {phantom_cm} cm phantom but the console's "
                    f"CTDIvol refers to the {ct.ctdi_phantom_cm} cm phantom: not comparable",
                    where)
        if "pitch" in params:
            pitch = _floats(params["pitch"], "pitch")[0]
            pitch_source = "parameter"
        elif ct.pitch is not None:
            pitch, pitch_source = ct.pitch, "Spiral Pitch Factor (0018,9311)"
        else:
            pitch, pitch_source = 1.0, "assumed 1 (axial, contiguous)"
            result.warnings.append("no Spiral Pitch Factor in the header and no pitch parameter: "
                                   "pitch 1 assumed (contiguous axial scanning)")
        ctdiw = centre / 3.0 + 2.0 * periphery / 3.0
        measured = ctdiw / pitch
        if "measured_mas" in params:
            m_mas = _floats(params["measured_mas"], "measured_mas")[0]
            if ct.exposure_mas is None:
                raise MissingTagError("Exposure (0018,1152) is missing: cannot scale the "
                                      "measurement from measured_mas to the series' mAs", where)
            measured *= ct.exposure_mas / m_mas
            result.warnings.append(
                f"measurement scaled by the series' mAs ({ct.exposure_mas:g}) / measured_mas "
                f"({m_mas:g}); vendors differ in what Exposure (0018,1152) holds (per rotation "
                "or effective mAs): check it for this scanner")
        if ct.exposure_modulation and ct.exposure_modulation.upper() not in ("NONE", ""):
            result.warnings.append(f"tube-current modulation ({ct.exposure_modulation}): the "
                                   "displayed CTDIvol is the series mean; a fixed-mA chamber "
                                   "measurement verifies it only at the same mean mA")
        displayed = float(ct.ctdivol_mgy)
        result.add("ctdi100_centre_mgy", centre, "mGy")
        result.add("ctdi100_periphery_mgy", periphery, "mGy")
        result.add("ctdiw_mgy", ctdiw, "mGy")
        result.add("ctdivol_measured_mgy", measured, "mGy", labels={"phantom_cm": phantom_cm})
        result.add("ctdivol_displayed_mgy", displayed, "mGy", labels={"phantom_cm": phantom_cm})
        result.add("ctdivol_deviation_percent", 100.0 * (displayed - measured) / measured, "%",
                   labels={"phantom_cm": phantom_cm})
        result.parameters.update({"pitch": pitch, "pitch_source": pitch_source,
                                  "phantom_diameter_cm": phantom_cm, "ctdi100_source": source,
                                  "kvp": ct.kvp, "exposure_mas": ct.exposure_mas})
        return result

    def figures(self, result: Result) -> list[Any]:
        return []
