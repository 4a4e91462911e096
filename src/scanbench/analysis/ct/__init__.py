"""CT analyses: importing this package registers them.

Part A (issue 3): water-phantom QC, MTF, NPS, dose verification; part B adds
the ACR 464 and CatPhan analyses here.
"""

from scanbench.analysis.ct import dose_verification, mtf, nps, water  # noqa: F401
