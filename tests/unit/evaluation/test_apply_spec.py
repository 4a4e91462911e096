"""apply_spec sets limits and status from a spec; summarise counts them."""

from __future__ import annotations

import math

from scanbench.evaluation import apply_spec, summarise
from scanbench.specs import load_spec, parse_spec
from scanbench.types import DeviceIdentity, Result

IQ = "pet.nema_nu2_2018.image_quality"
SR = "pet.nema_nu2_2018.spatial_resolution"


def _iq(rc_mean_37: float = 0.80, device: DeviceIdentity | None = None) -> Result:
    r = Result(analysis=IQ, standard="NEMA NU 2-2018 section 7.4", series_instance_uid="1.2.3",
               device=device or DeviceIdentity("ACME", "PET 1"), acquired_at=None)
    rc_mean = dict(zip((37, 28, 22, 17, 13, 10), (rc_mean_37, 0.8, 0.7, 0.6, 0.5, 0.3),
                       strict=True))
    for s, v in rc_mean.items():
        r.add("rc_mean", v, "1", labels={"sphere_mm": s})
        r.add("rc_max", v * 1.3, "1", labels={"sphere_mm": s})
        r.add("rc_peak", v * 1.1, "1", labels={"sphere_mm": s})
    r.add("lung_residual", 4.0, "%")
    return r


def test_earl1_pass_fail_and_info() -> None:
    r = apply_spec(_iq(rc_mean_37=0.95), load_spec("earl1"))
    assert r.spec == "earl1"
    m37 = r.get("rc_mean", sphere_mm=37)
    assert m37.status == "fail"  # 0.95 above the 0.89 limit
    assert (m37.limits.low, m37.limits.high, m37.limits.verified) == (0.76, 0.89, True)
    assert "Table 1" in m37.limits.source and m37.limits.source.startswith("earl1: ")
    assert r.get("rc_mean", sphere_mm=28).status == "pass"
    assert r.get("rc_max", sphere_mm=10).status == "pass"  # 0.39 in 0.34–0.57
    assert r.get("rc_peak", sphere_mm=10).status == "info"
    assert r.get("rc_peak", sphere_mm=10).limits is None
    assert r.get("lung_residual").status == "info"
    assert not r.warnings


def test_sphere_label_matches_float_values() -> None:
    r = _iq()
    for m in r.measurements:
        if "sphere_mm" in m.labels:
            m.labels["sphere_mm"] = float(m.labels["sphere_mm"])
    apply_spec(r, load_spec("earl1"))
    assert r.get("rc_mean", sphere_mm=37.0).limits is not None


def test_unverified_spec_warns_and_marks_limits() -> None:
    r = apply_spec(_iq(), load_spec("earl2"))
    assert any(w.startswith("spec earl2 contains unconfirmed limits: ") and "pynemaiqpet" in w
               for w in r.warnings)
    assert r.get("rc_mean", sphere_mm=37).limits.verified is False
    apply_spec(r, load_spec("earl2"))
    assert sum("earl2 contains unconfirmed" in w for w in r.warnings) == 1


def test_unverified_spec_without_rules_for_the_analysis_does_not_flag_it() -> None:
    r = apply_spec(_sr(DeviceIdentity("ACME", "PET 1")), load_spec("earl2"))
    assert not any("unconfirmed" in w for w in r.warnings)
    assert any("has no limits for" in w for w in r.warnings)


def test_reapplying_another_spec_clears_old_limits() -> None:
    r = apply_spec(_iq(), load_spec("earl1"))
    apply_spec(r, load_spec("earl-calibration"))
    assert r.spec == "earl-calibration"
    assert all(m.status == "info" and m.limits is None for m in r.measurements)
    assert any("has no limits for pet.nema_nu2_2018.image_quality" in w for w in r.warnings)


def test_missing_sphere_and_nan_are_reported() -> None:
    r = _iq(rc_mean_37=math.nan)
    r.measurements = [m for m in r.measurements if m.labels.get("sphere_mm") != 10]
    apply_spec(r, load_spec("earl1"))
    assert r.get("rc_mean", sphere_mm=37).status == "fail"
    assert any("rc_mean (sphere_mm 37) is not a number" in w for w in r.warnings)
    assert any("requires rc_mean {sphere_mm: 10}" in w for w in r.warnings)
    assert any("requires rc_max {sphere_mm: 10}" in w for w in r.warnings)


def _sr(device: DeviceIdentity) -> Result:
    r = Result(analysis=SR, standard="NEMA NU 2-2018 section 3", series_instance_uid="9",
               device=device, acquired_at=None)
    for d, v in (("radial", 3.1), ("tangential", 2.8), ("axial", 2.9)):
        r.add("fwhm_mm", v, "mm", labels={"direction": d, "position_cm": 1})
        r.add("fwhm_mm", v + 1, "mm", labels={"direction": d, "position_cm": 10})
    return r


def test_device_claims_apply_only_to_their_model() -> None:
    spec = load_spec("nema-nu2-2018")
    umi = apply_spec(_sr(DeviceIdentity(manufacturer="UIH", model="uMI 550")), spec)
    assert umi.get("fwhm_mm", direction="radial", position_cm=1).status == "fail"  # 3.1 > 2.98
    assert umi.get("fwhm_mm", direction="tangential", position_cm=1).status == "pass"
    assert umi.get("fwhm_mm", direction="radial", position_cm=10).status == "info"
    other = apply_spec(_sr(DeviceIdentity(manufacturer="GE", model="Discovery MI")), spec)
    assert all(m.status == "info" for m in other.measurements)
    assert not any("requires" in w for w in other.warnings)


def test_device_rule_replaces_general_rule_and_general_rules_intersect() -> None:
    spec = parse_spec("""
name: mixed
title: t
version: "1"
description: d
verified: true
sources: [s]
rules:
  - {analysis: pet.nema_nu2_2018.spatial_resolution, measurement: fwhm_mm, high: 5.0,
     source: general, confidence: C}
  - {analysis: pet.nema_nu2_2018.spatial_resolution, measurement: fwhm_mm,
     labels: {direction: radial}, low: 1.0, high: 3.5, source: radial, confidence: C}
  - {analysis: pet.nema_nu2_2018.spatial_resolution, measurement: fwhm_mm,
     labels: {direction: radial, position_cm: 1}, device: {model: PET 1}, high: 3.0,
     source: claim, confidence: C}
""")
    r = apply_spec(_sr(DeviceIdentity("ACME", "PET-1")), spec)
    claim = r.get("fwhm_mm", direction="radial", position_cm=1)
    assert (claim.limits.low, claim.limits.high, claim.status) == (None, 3.0, "fail")
    both = r.get("fwhm_mm", direction="radial", position_cm=10)  # general ∩ radial
    assert (both.limits.low, both.limits.high, both.status) == (1.0, 3.5, "fail")
    assert "general" in both.limits.source and "radial" in both.limits.source
    assert r.get("fwhm_mm", direction="axial", position_cm=10).limits.high == 5.0


def test_summarise_counts() -> None:
    a = apply_spec(_iq(rc_mean_37=0.95), load_spec("earl1"))
    b = apply_spec(_iq(), load_spec("earl1"))
    c = _iq()
    s = summarise([a, b, c])
    assert [row["status"] for row in s["results"]] == ["fail", "pass", "info"]
    # rc_mean 0.95 and rc_max 1.235 of the 37 mm sphere are both above their bands
    assert s["results"][0]["fail"] == 2 and s["results"][0]["pass"] == 10
    assert s["results"][0]["info"] == 7 and s["results"][2]["info"] == 19
    assert s["total"] == {"pass": 22, "fail": 2, "info": 33, "within_unconfirmed": 0,
                          "outside_unconfirmed": 0, "not_judged": 0, "refused": 0,
                          "results": 3}
    assert s["status"] == "fail"
    assert summarise([])["status"] == "info"
