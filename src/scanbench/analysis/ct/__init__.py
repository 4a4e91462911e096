"""CT analyses: importing this package registers them.

Part A (issue 3): water-phantom QC, MTF, NPS, dose verification; part B adds
the ACR 464 and CatPhan analyses here.
"""

from scanbench.analysis.ct import (  # noqa: F401
    acr464,
    catphan,
    dose_verification,
    mtf,
    nps,
    water,
)
