"""The shared figure helpers draw in mm with the ROI where the analysis put it."""

from __future__ import annotations

import numpy as np
import pytest

from scanbench.report.figures import RoiShape, bar_figure, profile_figure, slice_with_rois


def test_slice_with_rois_places_circles_in_mm_and_keeps_aspect() -> None:
    img = np.arange(40 * 50, dtype=float).reshape(40, 50)
    rois = [RoiShape((20.0, 25.0), 10.0, "37 mm"), RoiShape((5.0, 5.0), 4.0, "bg", "yellow")]
    fig = slice_with_rois(img, (2.0, 3.0), rois, "IQ slice", unit="Bq/mL")
    c = fig.layout.shapes[0]
    # centre (row 20, col 25) at y = 40 mm, x = 75 mm; radius 10 mm
    assert (c.x0, c.x1, c.y0, c.y1) == (65.0, 85.0, 30.0, 50.0)
    assert fig.layout.shapes[1].line.color == "yellow"
    assert [a.text for a in fig.layout.annotations] == ["37 mm", "bg"]
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis.scaleratio == 1
    assert fig.layout.yaxis.range[0] > fig.layout.yaxis.range[1]  # row 0 at the top
    assert list(fig.data[0].x[:2]) == [0.0, 3.0] and list(fig.data[0].y[:2]) == [0.0, 2.0]


def test_slice_with_rois_is_the_figure_built_one_roi_at_a_time() -> None:
    """The ROIs are set in one layout update (plotly re-validates the whole list on every
    add_shape: 0.7 s for the IQ analysis's 72 ROIs); the figure is the one the per-ROI
    add_shape / add_annotation calls build, to the last byte of its JSON."""
    from scanbench.report import figures

    img = np.random.default_rng(3).random((96, 80))
    rois = [RoiShape((30.0 + i % 9 * 2.5, 25.0 + i // 9 * 3.0), 18.5 - i % 4,
                     str(i) if i % 3 else "", "red" if i % 5 == 0 else None)
            for i in range(20)]
    got = slice_with_rois(img, (2.0, 2.0), rois, "IQ slice")
    want = slice_with_rois(img, (2.0, 2.0), [], "IQ slice", view_margin_mm=None)
    want.update_xaxes(range=got.layout.xaxis.range)
    want.update_yaxes(range=got.layout.yaxis.range)
    want.data[0].update(x=got.data[0].x, y=got.data[0].y, z=got.data[0].z)
    for i, roi in enumerate(rois):
        colour = roi.colour or figures._ROI_COLOURS[i % len(figures._ROI_COLOURS)]
        cy, cx, r = roi.centre_yx[0] * 2.0, roi.centre_yx[1] * 2.0, roi.radius_mm
        want.add_shape(type="circle", xref="x", yref="y", x0=cx - r, x1=cx + r,
                       y0=cy - r, y1=cy + r, line={"color": colour, "width": 1.5})
        if roi.label:
            want.add_annotation(x=cx, y=cy - r, text=roi.label, showarrow=False, yshift=2,
                                yanchor="bottom", bgcolor=figures._LABEL_BG, borderpad=1,
                                font={"color": colour, "size": 11})
    assert got.to_json() == want.to_json()


def test_slice_with_rois_rejects_volume() -> None:
    with pytest.raises(ValueError, match="2-D"):
        slice_with_rois(np.zeros((2, 3, 4)), (1.0, 1.0), [], "x")


def test_profile_figure_has_fit_markers_and_levels() -> None:
    x = np.linspace(-10, 10, 21)
    y = np.exp(-x**2 / 8)
    fig = profile_figure(x, y, title="radial", markers=[(0.0, 1.0, "peak")],
                         fit_curve=(x, y), levels=[(0.5, "half max"), (0.1, "tenth max")])
    assert [t.name for t in fig.data] == ["measured", "fit", "points"]
    assert [s.y0 for s in fig.layout.shapes] == [0.5, 0.1]
    assert "half max" in [a.text for a in fig.layout.annotations]


def test_bar_figure_bands_and_length_check() -> None:
    fig = bar_figure(["10", "13"], [0.5, 0.7], title="RC", bands=[(0.3, 0.6), (None, 0.8)])
    assert fig.data[0].y.tolist() == [0.5, 0.7]
    assert list(fig.data[1].y) == [0.3, None] and list(fig.data[2].y) == [0.6, 0.8]
    with pytest.raises(ValueError):
        bar_figure(["a"], [1.0, 2.0], title="x")


def test_slice_view_opens_on_the_rois_with_a_margin_and_can_show_all() -> None:
    img = np.zeros((300, 300))  # 600 mm field of 2 mm pixels, ROIs in its middle
    rois = [RoiShape((150.0, 150.0), 20.0), RoiShape((150.0, 180.0), 5.0)]
    fig = slice_with_rois(img, (2.0, 2.0), rois, "crop", view_margin_mm=30.0)
    # x: from 300 - 20 - 30 = 250 mm to 360 + 5 + 30 = 395 mm; y: 250 to 350 mm, row 0 on top
    assert list(fig.layout.xaxis.range) == [250.0, 395.0]
    assert list(fig.layout.yaxis.range) == [350.0, 250.0]
    full = slice_with_rois(img, (2.0, 2.0), rois, "all", view_margin_mm=None)
    assert list(full.layout.xaxis.range) == [-1.0, 599.0]
    edge = slice_with_rois(img, (2.0, 2.0), [RoiShape((2.0, 2.0), 10.0)], "edge")
    assert edge.layout.xaxis.range[0] == -1.0  # clipped to the image, never beyond it


def test_large_image_is_reduced_for_display_with_a_full_resolution_png() -> None:
    import base64
    import io

    from PIL import Image

    from scanbench.report.figures import DISPLAY_MAX_PX, Window

    img = np.random.default_rng(0).normal(0.0, 10.0, (512, 512)).round()
    fig = slice_with_rois(img, (0.5, 0.5), [], "CT", unit="HU", view_margin_mm=None,
                          window=Window(40.0, 400.0, "soft-tissue"))
    heat = fig.data[0]
    assert max(np.shape(heat.z)) <= DISPLAY_MAX_PX  # 512² travels as 256²
    assert heat.z.dtype == np.int16  # integer CT numbers stay integers, half the bytes
    assert (heat.zmin, heat.zmax) == (-160.0, 240.0)
    # block centres keep the mm frame: pixel pair (0, 1) is drawn at 0.25 mm
    assert heat.x[0] == pytest.approx(0.25) and heat.x[1] == pytest.approx(1.25)
    uri = fig.layout.meta["full_png"]
    assert uri.startswith("data:image/png;base64,")
    png = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert png.size == (512, 512) and png.mode == "L"
    assert "512 × 512 px" in fig.layout.meta["full_png_name"]


def test_rois_are_outlines_and_labels_sit_on_a_light_box() -> None:
    fig = slice_with_rois(np.zeros((50, 50)), (1.0, 1.0), [RoiShape((25.0, 25.0), 5.0, "rod")],
                          "x", unit="HU")
    # plotly's simple_white template fills shapes black at 30 % and draws no outline:
    # the ROI would darken the insert it marks
    defaults = fig.layout.template.layout.shapedefaults
    assert defaults.fillcolor == "rgba(0,0,0,0)" and defaults.opacity == 1
    assert defaults.line.width > 0
    assert fig.layout.annotations[0].bgcolor.startswith("rgba(255,255,255")


def test_coronal_view_names_its_axis_z_and_mip_reduction_keeps_the_peak() -> None:
    img = np.zeros((600, 40))
    img[301, 20] = 1000.0  # a point source in one voxel
    fig = slice_with_rois(img, (1.0, 1.0), [], "coronal", y_title="z (mm)", reduce="max",
                          view_margin_mm=None)
    assert fig.layout.yaxis.title.text == "z (mm)" and "z %{y" in fig.data[0].hovertemplate
    assert float(np.max(fig.data[0].z)) == 1000.0  # a block mean would show 250


def test_bar_mtf_threshold_is_a_visible_line() -> None:
    from scanbench.report.figures import bar_mtf_figure

    fig = bar_mtf_figure([4, 5, 6, 7], [0.6, 0.4, 0.2, 0.05], threshold=0.1, title="bars",
                         rule="and amplitude > 3 SE")
    line = fig.data[1]
    assert list(line.y) == [0.1, 0.1] and line.line.width >= 2 and line.line.color
    assert "MTF 0.1" in line.name
    assert fig.layout.yaxis.range[0] < 0.1 < fig.layout.yaxis.range[1]
