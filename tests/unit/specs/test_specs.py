"""Spec loading and validation: the shipped specs, and clear errors for bad ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanbench.errors import SpecError
from scanbench.specs import MEASUREMENTS, list_specs, load_spec, parse_spec
from scanbench.types import DeviceIdentity

IQ = "pet.nema_nu2_2018.image_quality"


def test_shipped_specs_load() -> None:
    shipped = list_specs()
    assert {"earl-calibration", "earl1", "earl2", "nema-nu2-2018"} <= set(shipped)
    assert shipped == sorted(shipped)
    for name in list_specs():
        spec = load_spec(name)
        assert spec.name == name
        assert spec.sources and spec.title and spec.description
        for rule in spec.rules:
            assert rule.source and rule.confidence in "CPU"
            assert rule.measurement in MEASUREMENTS[rule.analysis]


def test_earl1_bands_are_the_confirmed_table() -> None:
    spec = load_spec("earl1")
    assert spec.verified and not spec.unconfirmed_rules
    bands = {(r.measurement, r.labels["sphere_mm"]): (r.low, r.high) for r in spec.rules}
    assert bands[("rc_mean", 37)] == (0.76, 0.89)
    assert bands[("rc_mean", 10)] == (0.27, 0.43)
    assert bands[("rc_max", 22)] == (0.83, 1.09)
    assert bands[("rc_max", 10)] == (0.34, 0.57)
    assert len(bands) == 12 and not any(m == "rc_peak" for m, _ in bands)


def test_earl2_is_unverified_and_says_what() -> None:
    spec = load_spec("earl2")
    assert not spec.verified
    assert "pynemaiqpet" in spec.unverified_reason
    assert all(r.confidence == "P" for r in spec.rules)
    bands = {(r.measurement, r.labels["sphere_mm"]): (r.low, r.high) for r in spec.rules}
    assert bands[("rc_mean", 37)] == (0.85, 1.00)
    assert bands[("rc_max", 17)] == (1.00, 1.38)
    assert bands[("rc_max", 10)] == (0.52, 0.88)


def test_calibration_and_nema_specs() -> None:
    cal = load_spec("earl-calibration")
    (rule,) = cal.rules
    assert (rule.measurement, rule.low, rule.high) == ("activity_concentration_bias_percent",
                                                       -10.0, 10.0)
    nema = load_spec("nema-nu2-2018")
    assert all(r.device is not None for r in nema.rules)  # NEMA itself sets no limits
    umi = DeviceIdentity(manufacturer="UIH", model="uMI 550")
    quadra = DeviceIdentity(manufacturer="SIEMENS", model="Biograph Vision Quadra")
    resolution = [r for r in nema.rules if r.analysis == "pet.nema_nu2_2018.spatial_resolution"]
    assert sum(r.device.matches(umi) for r in resolution) == 3
    assert sum(r.device.matches(quadra) for r in resolution) == 3
    # raw-data claims (issue 6): uMI 550 sensitivity, peak NECR, corrections accuracy
    assert sum(r.device.matches(umi) for r in nema.rules) == 6
    assert not any(r.device.matches(DeviceIdentity("GE MEDICAL SYSTEMS", "Discovery MI"))
                   for r in nema.rules)


def test_load_by_path(tmp_path: Path) -> None:
    p = tmp_path / "claims.yaml"
    p.write_text(_minimal(rules="""
  - analysis: pet.nema_nu2_2018.spatial_resolution
    measurement: fwhm_mm
    labels: {direction: radial, position_cm: 1}
    device: {manufacturer: ACME, model: [PET 1, PET-1]}
    high: 4.0
    source: contract annex 2
    confidence: C
"""))
    spec = load_spec(p)
    assert spec.path == p and spec.rules[0].device.model == ("PET 1", "PET-1")
    assert load_spec(str(p)).rules == spec.rules
    assert spec.rules[0].device.matches(DeviceIdentity(manufacturer="acme", model="pet1"))


def _minimal(rules: str = "", **top: str) -> str:
    head = {"name": "t", "title": "T", "version": "1", "description": "d",
            "verified": "true", "sources": "[s]"}
    head.update(top)
    return "".join(f"{k}: {v}\n" for k, v in head.items()) + "rules:" + (rules or " []\n")


RULE = """
  - analysis: {analysis}
    measurement: {measurement}
    labels: {labels}
    low: {low}
    high: {high}
    source: src
    confidence: {confidence}
"""


def _rule(**kw: str) -> str:
    d = {"analysis": IQ, "measurement": "rc_mean", "labels": "{sphere_mm: 37}",
         "low": "0.1", "high": "0.9", "confidence": "C"}
    d.update(kw)
    return RULE.format(**d)


@pytest.mark.parametrize(("text", "key", "problem"), [
    (_minimal(_rule(analysis="pet.nope")), "rules[0].analysis", "unknown analysis"),
    (_minimal(_rule(measurement="rc_median")), "rules[0].measurement", "does not produce"),
    (_minimal(_rule(labels="{diameter: 37}")), "rules[0].labels.diameter", "no label"),
    (_minimal(_rule(low="0.9", high="0.1")), "rules[0]", "above high"),
    (_minimal(_rule(low="null", high="null")), "rules[0]", "needs low, high"),
    (_minimal(_rule(low="abc")), "rules[0].low", "finite number"),
    (_minimal(_rule(confidence="X")), "rules[0].confidence", "must be C"),
    (_minimal(_rule(confidence="P")), "rules[0].confidence", "verified: true"),
    (_minimal(_rule() + _rule()), "rules[1]", "duplicates rules[0]"),
    (_minimal(verified="false"), "unverified_reason", "must say what"),
    (_minimal(verified="maybe"), "verified", "true or false"),
    (_minimal(colour="red"), "colour", "unknown key"),
    (_minimal(name="Bad Name"), "name", "not a valid spec name"),
    ("name: [unclosed", "", "not valid YAML"),
    ("- a list", "", "YAML mapping"),
])
def test_invalid_specs_name_file_key_and_problem(text: str, key: str, problem: str) -> None:
    with pytest.raises(SpecError) as exc:
        parse_spec(text, where="my-spec.yaml")
    assert exc.value.where == "my-spec.yaml"
    assert exc.value.message.startswith(key) and problem in exc.value.message


def test_unverified_spec_may_hold_partly_confirmed_limits() -> None:
    spec = parse_spec(_minimal(_rule(confidence="U"), verified="false",
                               unverified_reason="'band from memory'"))
    assert not spec.verified and spec.unconfirmed_rules == spec.rules


def test_unknown_name_and_missing_file() -> None:
    with pytest.raises(SpecError, match=r"unknown spec 'earl9'.*earl1"):
        load_spec("earl9")
    with pytest.raises(SpecError, match="not found"):
        load_spec("/nonexistent/spec.yaml")


def test_measurement_table_matches_the_analyses_sources() -> None:
    """Every name an analysis module adds with ``result.add("<name>", ...)`` is in
    MEASUREMENTS and vice versa, so specs are validated against what is produced."""
    import importlib
    import inspect
    import re

    from scanbench.analysis import registry

    for analysis_id, table in MEASUREMENTS.items():
        module = importlib.import_module(type(registry.get(analysis_id)).__module__)
        names = set(re.findall(r"""\.add\(\s*["']([a-z0-9_]+)["']""", inspect.getsource(module)))
        assert names == set(table), analysis_id
