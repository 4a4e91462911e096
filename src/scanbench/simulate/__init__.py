"""Virtual scanners: phantom geometry in, DICOM and ground truth out (DESIGN.md data flow)."""

from __future__ import annotations

from scanbench.simulate.pet import (
    SCANNER_MODELS,
    ScannerModel,
    render_iq,
    render_point,
    render_uniform,
    simulate_iq,
    simulate_point,
    simulate_uniform,
    write_series,
)

__all__ = [
    "SCANNER_MODELS",
    "ScannerModel",
    "render_iq",
    "render_point",
    "render_uniform",
    "simulate_iq",
    "simulate_point",
    "simulate_uniform",
    "write_series",
]
