"""Job timeouts per analysis class: which rule applies, where rules come from (built-in,
<home>/jobs.toml, --job-timeout), and bad settings refused naming the file or option."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanbench.errors import ScanbenchError
from scanbench.service.timeouts import DEFAULTS, JobTimeouts, parse_options


def test_the_most_specific_rule_wins() -> None:
    t = JobTimeouts({"default": 900, "study": 300, "PT": 1800, "ct.*": 120,
                     "ct.catphan": 600, "ct.cat*": 450})
    assert t.for_job("series", "ct.catphan", "CT") == (600, "ct.catphan")  # exact id
    assert t.for_job("series", "ct.catalog", "CT") == (450, "ct.cat*")  # longest pattern
    assert t.for_job("series", "ct.water", "CT") == (120, "ct.*")
    assert t.for_job("series", None, "PT") == (1800, "PT")  # not analysed yet: modality
    assert t.for_job("series", "mr.acr", "MR") == (900, "default")
    assert t.for_job("study") == (300, "study")


def test_file_then_options_override_the_built_in_values(tmp_path: Path) -> None:
    (tmp_path / "jobs.toml").write_text('[timeouts]\ndefault = 60\n"ct.*" = 30\n')
    t = JobTimeouts.load(tmp_path, ["ct.*=45", "20"])
    assert t.rules["default"] == 20 and t.rules["ct.*"] == 45
    assert t.rules["study"] == DEFAULTS["study"]
    assert t.sources == ("built-in defaults", str(tmp_path / "jobs.toml"), "--job-timeout")
    assert JobTimeouts.load(tmp_path / "none").rules == DEFAULTS


@pytest.mark.parametrize(("content", "problem"), [
    ("[timeouts\n", "not a valid TOML file"),
    ('[timeouts]\nPT = "soon"\n', "must be a number of seconds"),
    ("[timeouts]\nPT = -1\n", "must be a positive number"),
    ("[timeout]\nPT = 5\n", "unknown table or key 'timeout'"),
    ('timeouts = 5\n', "must be a table"),
])
def test_a_bad_settings_file_is_refused_naming_it(tmp_path: Path, content: str,
                                                  problem: str) -> None:
    (tmp_path / "jobs.toml").write_text(content)
    with pytest.raises(ScanbenchError, match=problem) as info:
        JobTimeouts.load(tmp_path)
    assert info.value.where == str(tmp_path / "jobs.toml")


@pytest.mark.parametrize("text", ["=5", "PT=", "PT=nan", "PT=0", "x"])
def test_a_bad_option_is_refused(text: str) -> None:
    with pytest.raises(ScanbenchError) as info:
        parse_options([text])
    assert info.value.where == "--job-timeout"
