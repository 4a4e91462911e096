"""The ``scipy.ndimage`` / ``scipy.special`` ports the ACR MRI analyses use: they live in
:mod:`scanbench.analysis.ndi`, shared with the PET analyses (issue 15); this module keeps
the names the MR code imports. ``erf`` here is C99's (``math.erf``), as the MR analyses
always used; the PET fill-ratio fit uses :func:`scanbench.analysis.ndi.erf`, SciPy's."""

from scanbench.analysis.ndi import (
    CHUNK,
    binary_dilation_cross,
    gaussian_filter,
    largest_component,
    map_coordinates_linear,
    uniform_filter1d,
)
from scanbench.analysis.ndi import erf_c99 as erf

__all__ = ["CHUNK", "binary_dilation_cross", "erf", "gaussian_filter", "largest_component",
           "map_coordinates_linear", "uniform_filter1d"]
