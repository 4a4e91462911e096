"""Spec rules conditioned on result parameters (``when``) and limits relative to a
device's baseline (``baseline``), and the ``--baseline`` command-line path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scanbench.errors import InputError, SpecError
from scanbench.evaluation import Baseline, apply_spec
from scanbench.specs import parse_spec
from scanbench.types import DeviceIdentity, Result

CAL = "pet.calibration_uniformity"

HEAD = """
name: test-spec
title: t
version: "1"
description: d
verified: false
unverified_reason: test
sources: [s]
rules:
"""


def _spec(rules: str):
    return parse_spec(HEAD + rules)


def _result(bias: float, *, params: dict | None = None, serial: str = "S1") -> Result:
    r = Result(analysis=CAL, standard="EARL", series_instance_uid="1.2",
               device=DeviceIdentity("ACME", "PET 1", serial), acquired_at=None,
               parameters=dict(params or {}))
    r.add("activity_concentration_bias_percent", bias, "%")
    r.add("suv_mean", 1.0 + bias / 100, "1")
    return r


WHEN = """
  - analysis: pet.calibration_uniformity
    measurement: activity_concentration_bias_percent
    when: {field_strength_t: {min: 2.5, max: 3.5}}
    low: -5
    high: 5
    source: three tesla
    confidence: U
  - analysis: pet.calibration_uniformity
    measurement: activity_concentration_bias_percent
    when: {field_strength_t: {max: 2.5}}
    low: -10
    high: 10
    source: below three tesla
    confidence: U
"""


@pytest.mark.parametrize(("field", "bias", "status", "source"), [
    # the rules are unconfirmed (U): compared with, never pass or fail
    (3.0, 7.0, "outside_unconfirmed", "three tesla"),
    (1.5, 7.0, "within_unconfirmed", "below three tesla"),
    (2.5, 4.0, "within_unconfirmed", "three tesla"),  # min is inclusive
    (3.5, 20.0, "info", None),  # max is exclusive: no rule applies
])
def test_when_selects_the_rule_by_parameter(field, bias, status, source) -> None:
    r = apply_spec(_result(bias, params={"field_strength_t": field}), _spec(WHEN))
    m = r.get("activity_concentration_bias_percent")
    assert m.status == status
    if source is None:
        assert m.limits is None
    else:
        assert f"{source} (not confirmed)" in m.limits.source
        assert m.limits.source.count("tesla") == 1  # one rule applied, not both


def test_when_without_the_parameter_says_so() -> None:
    r = apply_spec(_result(7.0), _spec(WHEN))
    assert r.get("activity_concentration_bias_percent").status == "info"
    assert any("field_strength_t" in w and "does not state" in w for w in r.warnings)


def test_when_equality_on_strings() -> None:
    spec = _spec("""
  - analysis: pet.calibration_uniformity
    measurement: suv_mean
    when: {protocol: Body}
    low: 0.9
    high: 1.1
    source: s
    confidence: U
""")
    assert apply_spec(_result(20, params={"protocol": "BODY"}), spec).get("suv_mean").status \
        == "outside_unconfirmed"
    assert apply_spec(_result(20, params={"protocol": "head"}), spec).get("suv_mean").status \
        == "info"


BASE = """
  - analysis: pet.calibration_uniformity
    measurement: activity_concentration_bias_percent
    baseline: {low: -2, high: 2, mode: absolute}
    source: local acceptance baseline
    confidence: C
  - analysis: pet.calibration_uniformity
    measurement: suv_mean
    baseline: {low: -5, high: 5, mode: percent}
    source: local acceptance baseline
    confidence: C
"""


def test_baseline_limits_absolute_and_percent() -> None:
    baseline = Baseline.from_results([_result(3.0)])  # suv_mean 1.03
    r = apply_spec(_result(4.5), _spec(BASE), baseline)
    bias = r.get("activity_concentration_bias_percent")
    assert (bias.limits.low, bias.limits.high) == pytest.approx((1.0, 5.0))
    assert bias.status == "pass"
    assert "baseline -2 / +2 of 3" in bias.limits.source
    suv = r.get("suv_mean")
    assert (suv.limits.low, suv.limits.high) == pytest.approx((1.03 * 0.95, 1.03 * 1.05))
    assert suv.status == "pass"
    r = apply_spec(_result(5.5), _spec(BASE), baseline)
    assert r.get("activity_concentration_bias_percent").status == "fail"


def test_baseline_missing_or_from_another_device() -> None:
    r = apply_spec(_result(4.5), _spec(BASE))
    assert r.get("suv_mean").status == "info"
    assert any("no baseline value" in w for w in r.warnings)
    other = Baseline.from_results([_result(3.0, serial="S2")])
    r = apply_spec(_result(4.5), _spec(BASE), other)
    assert r.get("suv_mean").status == "info"
    assert any("another device" in w for w in r.warnings)


def test_spec_validation_of_when_and_baseline() -> None:
    with pytest.raises(SpecError, match="either low/high or baseline"):
        _spec(BASE.replace("    source: local acceptance baseline\n",
                           "    low: 1\n    source: local acceptance baseline\n", 1))
    with pytest.raises(SpecError, match="mode"):
        _spec(BASE.replace("mode: absolute", "mode: relative"))
    with pytest.raises(SpecError, match=r"min 3\.5 is not below max 2\.5"):
        _spec(WHEN.replace("{min: 2.5, max: 3.5}", "{min: 3.5, max: 2.5}"))
    with pytest.raises(SpecError, match=r"when\.field_strength_t"):
        _spec(WHEN.replace("{min: 2.5, max: 3.5}", "[1, 2]"))


def test_baseline_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "b.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="cannot read baseline") as e:
        Baseline.load(bad)
    assert str(bad) in str(e.value)
    bad.write_text(json.dumps([{"x": 1}]))
    with pytest.raises(InputError, match="not scanbench results"):
        Baseline.load(bad)
    with pytest.raises(InputError, match="not found"):
        Baseline.load(tmp_path / "none.json")
    good = tmp_path / "g.json"
    good.write_text(json.dumps([_result(3.0).to_dict()]))
    assert Baseline.load(good).values
