"""The evaluation spec language (issue 13 item 1): JSON Schema validation with the line of
every error, required tests mapped to the schedule, tolerance and action levels, dimension
weights, device classes, ``extends`` (tightening a parent, loops refused) and the diff."""

from __future__ import annotations

import datetime as dt
import json
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from scanbench.analysis.physical import RANGES
from scanbench.errors import SpecError
from scanbench.evaluation import apply_spec
from scanbench.evaluation.schedule import ScheduleSpec, TestRecord, due_list
from scanbench.specs import MEASUREMENTS, list_specs, load_spec, parse_spec
from scanbench.specs.diff import diff_specs
from scanbench.types import DeviceIdentity, Measurement, Result

HEAD = """name: site
title: Site CT
version: "1"
description: d
verified: true
sources: [s]
"""
RULE = """rules:
  - analysis: ct.water
    measurement: noise_hu
    high: 5
    source: contract annex 2
    confidence: C
"""


def _error(text: str) -> str:
    with pytest.raises(SpecError) as exc:
        parse_spec(text, where="site.yaml")
    assert exc.value.where == "site.yaml"
    return exc.value.message


def test_every_shipped_spec_loads_and_matches_the_schema() -> None:
    schema = json.loads((resources.files("scanbench.specs") / "spec.schema.json")
                        .read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    names = list_specs()
    assert {"ws-519-2019", "ws-817-2023", "ws-t-263-2006"} <= set(names)
    for name in names:
        spec = load_spec(name)
        assert spec.name == name
    # the Chinese skeletons list items with their analyses and no limit at all
    for name, modality in (("ws-519-2019", "CT"), ("ws-817-2023", "PT"),
                           ("ws-t-263-2006", "MR")):
        spec = load_spec(name)
        assert not spec.rules and not spec.verified and spec.tests
        assert all(t.limits == "not confirmed" and t.frequency is None
                   and t.confidence != "C" and t.analysis in MEASUREMENTS for t in spec.tests)
        assert spec.applies_to is not None and spec.applies_to.modality == (modality,)


def test_measurement_names_are_in_the_physical_range_table() -> None:
    names = {m for produced in MEASUREMENTS.values() for m in produced}
    assert names <= set(RANGES)


@pytest.mark.parametrize(("text", "key", "line", "problem"), [
    # bad YAML: the line where the parser stopped
    (HEAD.replace("sources: [s]", "sources: [s") + RULE, "", 7, "not valid YAML"),
    # unknown field, at top level and inside a rule
    (HEAD + "colour: red\n" + RULE, "colour", 7, "unknown key"),
    (HEAD + RULE.replace("    high: 5", "    hihg: 5"), "rules[0].hihg", 10, "unknown key"),
    (HEAD + RULE.replace("ct.water", "ct.waterr"), "rules[0].analysis", 8,
     "unknown analysis 'ct.waterr'"),
    (HEAD + RULE.replace("noise_hu", "noise_mhu"), "rules[0].measurement", 9,
     "does not produce 'noise_mhu'"),
    (HEAD + RULE.replace("    source: contract annex 2\n", ""), "rules[0].source", 8,
     "every limit names its source"),
    (HEAD + RULE.replace("    high: 5", "    high: five"), "rules[0].high", 10,
     "finite number"),
    (HEAD + RULE.replace("    high: 5", "    high: 5\n    tolerance: {high: 6}"),
     "rules[0].tolerance.high", 11, "lies outside the action level 5"),
    (HEAD + "tests:\n  - {test: ct.water, frequency: fortnightly, source: s}\n" + RULE,
     "tests[0].frequency", 8, "must be one of daily"),
    (HEAD + "tests:\n  - {test: ct.water, source: s, analysis: ct.nope}\n" + RULE,
     "tests[0].analysis", 8, "unknown analysis"),
    (HEAD + "weights: {image_quality: 1, beauty: 2}\n" + RULE, "weights.beauty", 7,
     "unknown key"),
    (HEAD + "applies_to: {modality: MR, field_strength_t: {min: 3, max: 1.5}}\n" + RULE,
     "applies_to.field_strength_t", 7, "not below max"),
])
def test_each_broken_spec_names_key_line_and_problem(text: str, key: str, line: int,
                                                     problem: str) -> None:
    message = _error(text)
    assert message.startswith(key) and f"line {line}" in message and problem in message


def test_a_loop_of_inheritance_is_refused_at_its_extends_line(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(HEAD.replace("name: site", "name: a")
                                     + "extends: b.yaml\n" + RULE)
    (tmp_path / "b.yaml").write_text(HEAD.replace("name: site", "name: b")
                                     + "extends: a.yaml\n" + RULE)
    with pytest.raises(SpecError) as exc:
        load_spec(tmp_path / "a.yaml")
    assert "extends (line 7): inheritance loop refused: a.yaml -> b.yaml -> a.yaml" \
        in str(exc.value)
    (tmp_path / "self.yaml").write_text(HEAD + "extends: self.yaml\n" + RULE)
    with pytest.raises(SpecError, match=r"inheritance loop refused: self\.yaml -> self\.yaml"):
        load_spec(tmp_path / "self.yaml")


def test_a_site_spec_tightens_a_national_one_and_the_diff_shows_it(tmp_path: Path) -> None:
    earl1 = load_spec("earl1")
    parent_37 = next(r for r in earl1.rules if r.measurement == "rc_mean"
                     and r.labels == {"sphere_mm": 37})
    assert parent_37.low is not None and parent_37.high is not None
    site = tmp_path / "site.yaml"
    site.write_text(f"""name: earl1-site
title: EARL1 with a tighter 37 mm band
version: "2026-1"
description: our site's band
verified: true
extends: earl1
sources: [site physics board minute 12]
rules:
  - analysis: pet.nema_nu2_2018.image_quality
    measurement: rc_mean
    labels: {{sphere_mm: 37}}
    low: {parent_37.low + 0.02}
    high: {parent_37.high}
    tolerance: {{low: {parent_37.low + 0.04}}}
    source: site physics board minute 12
    confidence: C
  - analysis: pet.nema_nu2_2018.image_quality
    measurement: lung_residual
    high: 10
    source: site physics board minute 12
    confidence: C
""")
    spec = load_spec(site)
    assert spec.extends == ("earl1",) and len(spec.rules) == len(earl1.rules) + 1
    mine = next(r for r in spec.rules if r.key == parent_37.key)
    assert mine.low == pytest.approx(parent_37.low + 0.02)
    # the parent's other rules are kept as they were, in their order
    assert [r for r in spec.rules if r.key != parent_37.key][:-1] == \
        [r for r in earl1.rules if r.key != parent_37.key]
    assert earl1.sources[0] in spec.sources
    changes = {(c.change, c.what) for c in diff_specs(earl1, spec)}
    assert ("tightened", f"pet.nema_nu2_2018.image_quality {parent_37.describe()}") in changes
    assert ("added", "pet.nema_nu2_2018.image_quality lung_residual") in changes
    assert all(c.change in ("tightened", "added") for c in diff_specs(earl1, spec))
    assert {c.change for c in diff_specs(spec, earl1)} == {"loosened", "removed"}
    # tolerance (warning) band inside the action limits: three levels
    assert mine.level(parent_37.low + 0.01) == "action"
    assert mine.level(parent_37.low + 0.03) == "tolerance"
    assert mine.level(parent_37.low + 0.05) == "within tolerance"


def test_a_verified_child_may_not_inherit_unconfirmed_limits(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(HEAD + "extends: earl2\n" + RULE)  # earl2 holds P limits
    with pytest.raises(SpecError, match=r"verified \(line 5\).*parent spec earl2"):
        load_spec(site)


def test_required_tests_map_to_the_schedule() -> None:
    spec = parse_spec(HEAD + """retest_days: 2
weights: {image_quality: 3, radiation_dose: 1}
applies_to: {modality: CT, manufacturer: [GE, Siemens], axial_fov_mm: {min: 40}}
tests:
  - {test: ct.water, frequency: daily, weekdays: [0, 1, 2, 3, 4], source: site SOP 4.1,
     dimension: image_quality}
  - {test: ct.acr464, frequency: annual, window_days: 30, source: site SOP 4.2}
  - {test: ct.dose_verification, source: site SOP 4.3, limits: not confirmed}
""" + RULE)
    assert spec.normalised_weights() == {"image_quality": 0.75, "radiation_dose": 0.25}
    ident = DeviceIdentity(manufacturer="SIEMENS", model="x")
    assert spec.applies_to is not None
    assert spec.applies_to.matches(ident, modality="CT", axial_fov_mm=80.0) is True
    assert spec.applies_to.matches(ident, modality="MR", axial_fov_mm=80.0) is False
    assert spec.applies_to.matches(ident, modality="CT") is None  # FOV not given
    start = dt.datetime(2026, 1, 1)  # a Thursday: a daily slot and the annual slot start
    sched = spec.schedule(start)
    assert isinstance(sched, ScheduleSpec) and sched.retest_days == 2
    assert [(t.test, t.frequency, t.window_days, t.weekdays) for t in sched.tests] == [
        ("ct.water", "daily", None, (0, 1, 2, 3, 4)), ("ct.acr464", "annual", 30.0, None)]
    due = due_list("ct1", [sched], [TestRecord(start + dt.timedelta(hours=8), "ct.water",
                                               True)], [], at=start + dt.timedelta(hours=9))
    assert {i.test: i.status for i in due.items} == {"ct.water": "done", "ct.acr464": "due"}


def test_weekdays_only_for_a_daily_test() -> None:
    message = _error(HEAD + "tests:\n  - {test: a, frequency: weekly, weekdays: [0], "
                     "source: s}\n" + RULE)
    assert message.startswith("tests[0].weekdays (line 8)")


def test_the_new_keys_leave_judging_unchanged() -> None:
    plain = parse_spec(HEAD + RULE)
    rich = parse_spec(HEAD + "metadata: {publisher: us, issued: '2026-01-01'}\n"
                      "weights: {image_quality: 1}\ntests:\n  - {test: ct.water, "
                      "frequency: daily, source: s}\n" + RULE)
    assert rich.rules == plain.rules
    for spec in (plain, rich):
        r = Result(analysis="ct.water", standard="s", series_instance_uid="1",
                   device=DeviceIdentity(), acquired_at=None,
                   measurements=[Measurement("noise_hu", 6.0, "HU")])
        assert apply_spec(r, spec).measurements[0].status == "fail"


@pytest.mark.parametrize(("value", "status", "warned"), [
    (3.0, "pass", False), (4.5, "pass", True), (5.5, "fail", False)])
def test_tolerance_band_warns_inside_the_action_limits(value: float, status: str,
                                                       warned: bool) -> None:
    spec = parse_spec(HEAD + RULE.replace("    high: 5", "    high: 5\n    tolerance: {high: 4}"))
    r = Result(analysis="ct.water", standard="s", series_instance_uid="1",
               device=DeviceIdentity(), acquired_at=None,
               measurements=[Measurement("noise_hu", value, "HU")])
    apply_spec(r, spec)
    assert r.measurements[0].status == status
    tolerance = [w for w in r.warnings if "outside the tolerance level (≤ 4" in w]
    assert bool(tolerance) is warned
    if warned:
        assert "noise_hu = 4.5 HU" in tolerance[0] and "contract annex 2" in tolerance[0]


def test_the_documented_example_loads_and_diffs_as_docs_specs_md_says(tmp_path: Path) -> None:
    doc = (Path(__file__).parents[3] / "docs" / "specs.md").read_text(encoding="utf-8")
    example = doc.split("```yaml\nname: earl1-site\n", 1)[1].split("```", 1)[0]
    site = tmp_path / "earl1-site.yaml"
    site.write_text("name: earl1-site\n" + example)
    spec = load_spec(site)
    rows = {(c.change, c.kind, c.what): c for c in diff_specs(load_spec("earl1"), spec)}
    limit = rows[("tightened", "limit", "pet.nema_nu2_2018.image_quality rc_mean "
                  "{sphere_mm: 37}")]
    assert (limit.old, limit.new) == ("0.76 to 0.89", "0.78 to 0.89 (tolerance ≥ 0.8)")
    assert ("added", "limit", "pet.nema_nu2_2018.image_quality lung_residual") in rows
    test = rows[("tightened", "test", "pet.nema_nu2_2018.image_quality")]
    assert (test.old, test.new) == ("annual", "quarterly, window 14 d")
    assert {k for k in rows if k[1] == "weight"} == {
        ("changed", "weight", d) for d in ("image_quality", "radiation_dose", "workflow")}
    assert len(rows) == 6


def test_a_chain_of_parents_is_followed_and_a_longer_loop_refused(tmp_path: Path) -> None:
    def write(name: str, parent: str | None, high: float) -> Path:
        p = tmp_path / f"{name}.yaml"
        p.write_text(HEAD.replace("name: site", f"name: {name}")
                     + (f"extends: {parent}\n" if parent else "")
                     + RULE.replace("high: 5", f"high: {high}"))
        return p

    write("national", None, 6)
    write("region", "national.yaml", 5)
    site = write("site", "region.yaml", 4)
    spec = load_spec(site)
    assert spec.extends == ("region", "national") and [r.high for r in spec.rules] == [4]
    write("national", "site.yaml", 6)  # national -> site -> region -> national
    with pytest.raises(SpecError, match=r"loop refused: site\.yaml -> region\.yaml -> "
                                        r"national\.yaml -> site\.yaml"):
        load_spec(site)
