"""Effective dose: from CT DLP with region- and age-specific k-factors, and from the
administered activity of a radiopharmaceutical with ICRP dose coefficients.

Effective dose is a population quantity for comparing practices, not the dose
of one patient (ICRP 103 §4.4.7); every value here names its coefficient set.

CT (STANDARDS.md B.4): E = k × DLP, k in mSv/(mGy·cm), from Shrimpton et al.
as tabulated in AAPM Report 96 (ICRP 60 tissue weights) [C]. The adult neck
value 0.0059 is [U]: it is used, but flagged as unconfirmed. Age bands: the
coefficient of the nearest tabulated age (newborn, 1, 5, 10 y, adult), with
the boundaries at the midpoints 0.5, 3, 7.5 and 15 years (stated in the
result).

Radiopharmaceuticals (STANDARDS.md D.4): adult coefficients in mSv/MBq from
ICRP Publication 128 (compiling ICRP 53/80/106; ICRP 60 weights) [C]; the
values marked unconfirmed [U] are applied only with a flag in the result,
so that a programme sees which numbers still need checking against ICRP 128.
The PET/CT total is reported as its two parts and their sum (D.4).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scanbench.clinical.sr import Code
from scanbench.errors import AnalysisError

K_SET_AAPM96 = ("Shrimpton et al. k-factors as tabulated in AAPM Report 96 "
                "(ICRP 60 weights)")
AGES = (0.0, 1.0, 5.0, 10.0, 18.0)  # tabulated ages; 18 stands for adult
AGE_LABELS = ("newborn", "1 y", "5 y", "10 y", "adult")

#: region → k (mSv/(mGy·cm)) at AGES; STANDARDS.md B.4 [C] except the neck [U]
K_FACTORS: dict[str, tuple[float | None, ...]] = {
    "head": (0.011, 0.0067, 0.0040, 0.0032, 0.0021),
    "chest": (0.039, 0.026, 0.018, 0.013, 0.014),
    "abdomen_pelvis": (0.049, 0.030, 0.020, 0.015, 0.015),
    "trunk": (0.044, 0.028, 0.019, 0.014, 0.015),
    "neck": (None, None, None, None, 0.0059),
}
UNCONFIRMED_K = {"neck"}

#: CT target region codes (CID 4030, SCT ids; SRT equivalents via sr.EQUIVALENT) → region
REGION_OF_CODE: dict[str, str] = {
    "69536005": "head", "12738006": "head", "89546000": "head",  # head, brain, skull
    "45048000": "neck",
    "43799004": "chest",
    "818981001": "abdomen_pelvis", "816092008": "abdomen_pelvis",  # abdomen, pelvis
    "818982008": "abdomen_pelvis",  # abdomen and pelvis
    "416775004": "trunk", "38266002": "trunk",  # chest-abdomen-pelvis, entire body
}


def region_of(code: Code | None) -> str | None:
    """The k-factor region of a coded CT target region, or None."""
    if code is None:
        return None
    value, scheme = code.key
    return REGION_OF_CODE.get(value) if scheme == "SCT" else None


def age_band(age_years: float | None) -> int:
    """Index into AGES: nearest tabulated age; adult when the age is unknown."""
    if age_years is None:
        return len(AGES) - 1
    for i, edge in enumerate((0.5, 3.0, 7.5, 15.0)):
        if age_years < edge:
            return i
    return len(AGES) - 1


def k_factor(region: str, age_years: float | None = None) -> tuple[float, bool]:
    """(k in mSv/(mGy·cm), confirmed?) for a region and age; AnalysisError if none."""
    row = K_FACTORS.get(region)
    if row is None:
        raise AnalysisError(f"no k-factor for region '{region}' "
                            f"(known: {', '.join(K_FACTORS)})")
    k = row[age_band(age_years)]
    if k is None:
        raise AnalysisError(f"no k-factor for region '{region}' at age "
                            f"{AGE_LABELS[age_band(age_years)]} in {K_SET_AAPM96}")
    return k, region not in UNCONFIRMED_K


@dataclass(frozen=True)
class TracerCoefficient:
    agent: str
    msv_per_mbq: float
    confirmed: bool
    source: str


_DOSE_PAGE = "docs/standards/dose.md"
_ICRP128 = "ICRP Publication 128 (adult, ICRP 60 weights)"
_UNCONFIRMED = ("commonly quoted value, not yet checked against ICRP Publication 128 (see "
                f"{_DOSE_PAGE}#effective-dose-of-radiopharmaceuticals-icrp)")
#: key → coefficient. Keys are matched from agent codes first, then from text aliases.
TRACERS: dict[str, TracerCoefficient] = {
    "fdg": TracerCoefficient("18F-FDG", 1.9e-2, True, _ICRP128),
    "c11_acetate": TracerCoefficient("11C-acetate", 3.5e-3, True, _ICRP128),
    "c11_methionine": TracerCoefficient("11C-methionine", 8.4e-3, True, _ICRP128),
    "o15_water": TracerCoefficient("15O-water", 1.1e-3, True, _ICRP128),
    "f18_dopa": TracerCoefficient("18F-L-DOPA", 2.5e-2, True, _ICRP128),
    "ga67_citrate": TracerCoefficient("67Ga-citrate", 1.0e-1, True, _ICRP128),
    "cr51_edta": TracerCoefficient("51Cr-EDTA", 2.0e-3, True, _ICRP128),
    "naf": TracerCoefficient("18F-NaF", 1.7e-2, False, _UNCONFIRMED),
    "n13_ammonia": TracerCoefficient("13N-ammonia", 2.7e-3, False, _UNCONFIRMED),
    "rb82": TracerCoefficient("82Rb-chloride", 1.1e-3, False, _UNCONFIRMED),
    "ga68_peptide": TracerCoefficient("68Ga-peptides", 2.1e-2, False, _UNCONFIRMED),
    "tc99m_mdp": TracerCoefficient("99mTc-MDP", 5.7e-3, False, _UNCONFIRMED),
}
#: SCT agent codes (CID 25 / CID 4021) → TRACERS key
TRACER_OF_CODE = {"35321007": "fdg"}
#: lower-case text fragments of Radiopharmaceutical (0018,0031) → TRACERS key; the
#: header's free text is the only name older PET images give.
TRACER_ALIASES: tuple[tuple[str, str], ...] = (
    ("fdg", "fdg"), ("fluorodeoxyglucose", "fdg"), ("fluorodesoxyglucose", "fdg"),
    ("naf", "naf"), ("sodium fluoride", "naf"), ("fluoride", "naf"),
    ("ammonia", "n13_ammonia"), ("rubidium", "rb82"), ("rb82", "rb82"), ("82rb", "rb82"),
    ("dotatate", "ga68_peptide"), ("dotatoc", "ga68_peptide"), ("dotanoc", "ga68_peptide"),
    ("methionine", "c11_methionine"), ("acetate", "c11_acetate"), ("dopa", "f18_dopa"),
    ("water", "o15_water"), ("mdp", "tc99m_mdp"), ("medronate", "tc99m_mdp"),
)


def tracer_coefficient(agent_code: Code | None, agent_text: str | None
                       ) -> tuple[TracerCoefficient | None, str | None]:
    """The coefficient for an agent, and a note when it was found from free text."""
    if agent_code is not None:
        value, scheme = agent_code.key
        key = TRACER_OF_CODE.get(value) if scheme == "SCT" else None
        if key:
            return TRACERS[key], None
    text = (agent_text or "").lower().replace("^", "").replace("-", "")
    for alias, key in TRACER_ALIASES:
        if alias.replace("-", "") in text:
            return TRACERS[key], f"agent identified from its name '{agent_text}'"
    return None, None


@dataclass
class EffectiveDose:
    """The CT and radiopharmaceutical parts, their sum, and where each came from."""

    ct_msv: float | None = None
    ct_source: str | None = None
    radiopharmaceutical_msv: float | None = None
    radiopharmaceutical_source: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def total_msv(self) -> float | None:
        parts = [p for p in (self.ct_msv, self.radiopharmaceutical_msv) if p is not None]
        return sum(parts) if parts else None

    def to_dict(self) -> dict[str, Any]:
        return {"ct": self.ct_msv, "radiopharmaceutical": self.radiopharmaceutical_msv,
                "total": self.total_msv,
                "sources": {"ct": self.ct_source,
                            "radiopharmaceutical": self.radiopharmaceutical_source},
                "notes": list(self.notes)}


def ct_effective_dose(events: list[tuple[float | None, str | None]], age_years: float | None,
                      ) -> tuple[float | None, list[str]]:
    """Σ k(region, age) × DLP over (DLP mGy·cm, region) pairs; notes say what was left out."""
    notes: list[str] = []
    total = 0.0
    used = 0
    unconfirmed: set[str] = set()
    for i, (dlp, region) in enumerate(events, start=1):
        if dlp is None or dlp == 0:
            continue
        if region is None:
            notes.append(f"event {i}: no coded target region; its DLP {dlp:g} mGy·cm is not "
                         "in the CT effective dose")
            continue
        try:
            k, confirmed = k_factor(region, age_years)
        except AnalysisError as exc:
            notes.append(f"event {i}: {exc.message}")
            continue
        if not confirmed:
            unconfirmed.add(region)
        total += k * dlp
        used += 1
    if unconfirmed:
        notes.append(f"k-factor for {', '.join(sorted(unconfirmed))} is not confirmed: it "
                     "is not in the table of Shrimpton et al. in AAPM Report 96 (see "
                     f"{_DOSE_PAGE}#effective-dose-from-dlp)")
    if used == 0:
        return None, notes
    band = AGE_LABELS[age_band(age_years)]
    notes.append(f"k-factors for age band '{band}'"
                 + (" (patient age unknown: adult assumed)" if age_years is None else ""))
    return total, notes
