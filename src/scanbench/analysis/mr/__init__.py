"""MRI analyses (issue 7). Importing this package registers every MR analysis.

Each module below registers its analyses with ``@register``; add one import line
per module (NEMA MS 1 / MS 3 here, the ACR large-phantom suite beside them).
"""

from scanbench.analysis.mr import (
    acr_geometry,  # acr_*: the ACR large-phantom suite (issue 7 part B)
    acr_ghosting,
    acr_low_contrast,
    acr_resolution,
    acr_slice_position,
    acr_slice_thickness,
    acr_suite,
    acr_uniformity,
    snr,
    uniformity,
)

__all__ = ["acr_geometry", "acr_ghosting", "acr_low_contrast", "acr_resolution",
           "acr_slice_position", "acr_slice_thickness", "acr_suite", "acr_uniformity",
           "snr", "uniformity"]
