"""Imported by the node's fork server (:data:`scanbench.service.executors.PRELOAD`): every
analysis module of the catalogue and the clinical extractors, so that each job's process,
forked from that server, starts with them loaded instead of importing them itself.

Why: the registry imports an analysis module only when a run needs it (issue 15: a PET
run imports no CT analysis), and a job's process is new for every job (a killed or
crashed job harms no other). So before this, every CT job of the node imported the CT
analyses and their scipy parts again: measured on the demo's daily water phantom, 0.45 s
of CPU a job, of which the analysis itself took 0.11 s (bench/README.md, "demo").
Imported once here, a forked job shares those pages with the server (copy on write).

Nothing here may stop the fork server: it skips a module that fails to import (the
server itself only survives an ImportError), and a job that needs that module imports
it and reports the error as its own failure.
"""

from __future__ import annotations

import importlib
import logging

log = logging.getLogger("scanbench.node")

#: Modules a job may import besides the analyses (scanbench.service.jobs: dose and
#: workflow of a study; the clinical image quality of a patient's series).
EXTRA = ("scanbench.clinical.dose", "scanbench.clinical.workflow",
         "scanbench.service.clinical_iq", "scanbench.service.figures",
         # numba and the CT noise kernel loaded from its disk cache (compiled there on
         # the first start): about 0.5 s of CPU a job otherwise (bench/README.md,
         # clinical_iq.py)
         "scanbench.quality.ct_noise_kernel",
         # the CT phantom detectors' numba kernels, warmed from the same cache
         "scanbench.analysis.ct.slice_kernels")


def preload() -> list[str]:
    """Import every analysis module of the catalogue and :data:`EXTRA`; returns the
    modules that could not be imported (each with its error)."""
    from scanbench.analysis import registry

    failed = []
    for module in dict.fromkeys(mod for _modality, mod in registry.CATALOGUE.values()):
        try:
            importlib.import_module(module)
        except Exception as exc:  # never fatal here: the job that needs it reports it
            failed.append(f"{module}: {type(exc).__name__}: {exc}")
    try:
        registry.all_analyses()  # records the imported modules, in catalogue order
    except Exception as exc:
        failed.append(f"scanbench.analysis.registry: {type(exc).__name__}: {exc}")
    for module in EXTRA:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError:
            continue  # an optional part that is not installed
        except Exception as exc:
            failed.append(f"{module}: {type(exc).__name__}: {exc}")
    return failed


_FAILED = preload()
