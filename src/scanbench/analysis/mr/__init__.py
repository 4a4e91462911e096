"""MRI analyses (issue 7). Importing this package registers every MR analysis.

Each module below registers its analyses with ``@register``; add one import line
per module (NEMA MS 1 / MS 3 here, the ACR large-phantom suite beside them).
"""

from scanbench.analysis.mr import snr, uniformity

__all__ = ["snr", "uniformity"]
