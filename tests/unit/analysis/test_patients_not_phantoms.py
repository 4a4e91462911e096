"""Patients are never taken for phantoms by the automatic classification.

Virtual CT patients (``simulate/ct_patient.py``) from child to large adult, chest and
abdomen, and a virtual PET/CT patient's PET and CT (``simulate/pet_patient.py``) are
offered to every automatic detector of their modality: none may reach the registry's
confidence (``registry.MIN_CONFIDENCE``), so ``registry.choose`` finds no phantom and
the node treats them as clinical series. Before the fix a 260 × 175 mm abdomen was a
CatPhan and an ACR 464 at 0.95, and a neck-to-pelvis PET the IEC body phantom at 0.5.
The phantoms themselves are still recognised: the CatPhan, ACR 464 and IEC body phantom
detection tests (test_catphan_unit, test_acr464_unit, test_image_quality, test_iq_real)
keep their assertions.
"""

from __future__ import annotations

import numpy as np
import pytest

from scanbench.analysis import registry
from scanbench.analysis.ct import phantom_modules as pm
from scanbench.analysis.pet.image_quality import ImageQuality, ring_location
from scanbench.errors import AnalysisError
from scanbench.simulate.ct_patient import VirtualPatient, as_series, virtual_patient
from scanbench.simulate.pet_patient import PetPatient, pet_ct_series
from scanbench.types import Series

# lateral × AP (mm): a child's trunk (180 × 150), the bodies near a 200 mm phantom's area
# that were taken for one (220 × 160, 260 × 175), a nearly round small trunk (210 × 190,
# axis ratio 0.9), round trunks the outline alone cannot tell from the phantom (200 × 198,
# 220 × 215: told apart by the inserts), average and large adults (330 × 240, 400 × 300)
SIZES = [(180.0, 150.0), (220.0, 160.0), (260.0, 175.0), (210.0, 190.0), (200.0, 198.0),
         (220.0, 215.0), (330.0, 240.0), (400.0, 300.0)]


def _no_phantom(series: Series) -> None:
    scores = {}
    for a in registry.all_analyses(series.facts.modality).values():
        if getattr(a, "automatic", True) and hasattr(a, "detect"):
            scores[a.id] = float(a.detect(series))
    claimed = {k: v for k, v in scores.items() if v >= registry.MIN_CONFIDENCE}
    assert not claimed, f"a patient taken for a phantom: {claimed}"
    with pytest.raises(AnalysisError):
        registry.choose(series)


@pytest.mark.parametrize("region", ["abdomen", "chest"])
@pytest.mark.parametrize("lat_ap", SIZES, ids=[f"{a:.0f}x{b:.0f}" for a, b in SIZES])
def test_virtual_ct_patient_is_no_phantom(lat_ap: tuple[float, float], region: str) -> None:
    lat, ap = lat_ap
    p = VirtualPatient(lat_mm=lat, ap_mm=ap, region=region, slices=3, matrix=192)
    vol, _ = virtual_patient(p, seed=1)
    _no_phantom(as_series(p, vol))


def test_body_axis_ratio_tells_a_cylinder_from_a_trunk() -> None:
    """The measure the CT phantom detectors use: a 260 × 175 mm body has about the
    area of the 200 mm phantom but not its round section."""
    p = VirtualPatient(lat_mm=260.0, ap_mm=175.0, slices=1, matrix=256)
    vol, _ = virtual_patient(p)
    s = as_series(p, vol)
    body = pm.find_body(vol[0], (s.spacing[1], s.spacing[2]))
    assert body is not None
    assert abs(body.radius_mm - 100.0) < 10.0  # the phantom's area: size alone fails
    assert body.axis_ratio == pytest.approx(175.0 / 260.0, abs=0.03)
    assert body.axis_ratio < pm.MIN_PHANTOM_AXIS_RATIO


def test_bright_runs_counts_separate_arcs_of_a_closed_ring() -> None:
    """The insert check of the CT detectors: a CatPhan or ACR bar ring shows several
    separate bright arcs, a vertebra one; short gaps (a group's bars, noise) join."""
    ring = np.zeros(720)
    assert pm.bright_runs(ring, 0.5) == 0
    ring[100:130] = 1.0  # a vertebra: one arc
    assert pm.bright_runs(ring, 0.5) == 1
    ring[132:140] = 1.0  # 2-sample gap: the same arc
    assert pm.bright_runs(ring, 0.5) == 1
    ring[715:] = ring[:4] = 1.0  # an arc over the seam counts once
    assert pm.bright_runs(ring, 0.5) == 2
    bars = np.zeros(720)
    for a in range(0, 720, 90):  # eight patterns 45° apart (ACR 464 module 4)
        bars[a + 20:a + 44] = 1.0
    assert pm.bright_runs(bars, 0.5) == 8
    assert pm.bright_runs(np.ones(720), 0.5) == 1


@pytest.fixture(scope="module")
def pet_ct() -> tuple[Series, Series]:
    # neck to pelvis, as the node's clinical PET test scans it
    p = PetPatient(ct_pixel_mm=2.0, ct_slice_mm=6.0, z_min_mm=-300.0, z_max_mm=150.0)
    pet, ct, _ = pet_ct_series(p, seed=1)
    return pet, ct


@pytest.mark.parametrize("which", ["pet", "ct"])
def test_virtual_pet_ct_patient_is_no_phantom(pet_ct: tuple[Series, Series],
                                              which: str) -> None:
    _no_phantom(pet_ct[0] if which == "pet" else pet_ct[1])


def test_pet_trunk_without_the_lung_insert_is_not_the_iec_phantom(
        pet_ct: tuple[Series, Series]) -> None:
    """What made the trunk look like the phantom: the IEC body's outline and four or more
    hot spots on a ring; what tells it apart: no lung insert at the ring's centre."""
    loc = ring_location(pet_ct[0], ())
    assert loc.shape_score >= 0.5 and int((loc.sphere_contrast_snr >= 3.0).sum()) >= 4
    assert loc.lung_centre_yx is None
    assert ImageQuality().detect(pet_ct[0]) < registry.MIN_CONFIDENCE
