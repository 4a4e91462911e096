"""What a physicist reads: the new statuses as words with their notes (never FAIL for an
unconfirmed limit), and CT images drawn in a window, not across -3000…+141 HU."""

from __future__ import annotations

import re

import numpy as np

from scanbench.analysis.ct.water import WaterPhantomQc
from scanbench.evaluation import apply_spec
from scanbench.report.figures import CT_SOFT_TISSUE
from scanbench.report.html import render_html
from scanbench.simulate.ct import CtScannerModel, render_water
from scanbench.specs import load_spec
from scanbench.types import DeviceIdentity, Result


def _aera_low_contrast() -> Result:
    """The case issue 11 found: 29 spokes on a 1.5 T Aera against the unconfirmed ≥ 30."""
    r = Result(analysis="mr.acr.low_contrast", standard="ACR Large Phantom Test Guidance",
               series_instance_uid="1.2.3", device=DeviceIdentity("Siemens", "Aera"),
               acquired_at=None, parameters={"field_strength_t": 1.5, "sequence": "T1"})
    r.add("spokes_detected_total", 29.0, "1")
    apply_spec(r, load_spec("acr-mri-2022"))
    r.add("percent_signal_ghosting", 0.4, "%").not_judged(
        "rests on the noise floor, which this series does not show")
    r.add("percent_integral_uniformity", 112.0, "%").refuse(
        "PIU 112 % is outside the physical range 0-100 %")
    return r


def test_unconfirmed_limit_reads_as_outside_unconfirmed_never_fail() -> None:
    r = _aera_low_contrast()
    assert r.measurements[0].status == "outside_unconfirmed"
    html = render_html([r], figures=None)
    row = re.search(r'<tr><td title="spokes_detected_total">spokes_<wbr>detected_<wbr>total</td>'
                    r".*?</tr>", html, re.S)
    assert row is not None
    assert 'class="status status-outside_unconfirmed">outside unconfirmed limit<' in row.group(0)
    assert "≥ 30" in row.group(0) and "(unconfirmed)" in row.group(0)
    assert 'status-fail">fail' not in html and ">FAIL<" not in html
    # each status has its own colour class and a legend that says what it means
    assert ".status-outside_unconfirmed {" in html
    assert "outside a limit the standards do not confirm" in html


def test_not_judged_and_refused_show_their_word_and_note() -> None:
    html = render_html([_aera_low_contrast()], figures=None)
    assert 'status-not_judged">not judged<' in html and 'status-refused">refused<' in html
    assert ('<tr class="note"><td colspan="7"><strong>note 2:</strong> PIU 112 % is outside '
            "the physical range 0-100 %") in html
    assert "rests on the noise floor, which this series does not show" in html
    assert ">n/a<" in html  # the refused value is withheld, not shown
    assert "1 not judged, 1 refused" in html  # the header counts them


def test_a_note_shared_by_many_values_is_printed_once() -> None:
    r = Result(analysis="pet.nema_nu2_2018.image_quality", standard="NEMA NU 2-2018",
               series_instance_uid="1.2", device=DeviceIdentity(), acquired_at=None)
    why = "activity_ratio=4 contradicts the image"
    for d in (10, 13, 17):
        r.add("rc_max", 0.5, "1", labels={"sphere_mm": d}).refuse(why)
    html = render_html([r], figures=None)
    assert html.count(why) == 1
    assert html.count("<strong>note 1</strong> (as above)") == 2


def test_ct_water_figure_is_windowed() -> None:
    model = CtScannerModel()
    volume, _truth = render_water(model, seed=5)
    series = volume.to_series(model)
    result = WaterPhantomQc().run(series)
    heat = WaterPhantomQc().figures(result)[0].data[0]
    # the soft-tissue window (W 400 L 40), not the image's own -1000…+100 HU range
    assert (heat.zmin, heat.zmax) == (CT_SOFT_TISSUE.low, CT_SOFT_TISSUE.high) == (-160, 240)
    z = np.asarray(heat.z, dtype=float)
    water = np.nanmedian(z[z > -500])
    assert heat.zmin < water < heat.zmax  # water is a mid grey, not a flat extreme
    assert max(z.shape) <= 256  # reduced for display
    assert "W 400 L 40" in heat.colorbar.title.text
