"""Fixtures for the DICOM layer tests: real series from the shared data, read once."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from scanbench.dicom import read_one
from scanbench.types import Series

PET_RECON = "pet/nema-iq-test-recon/pet_recon_1"


@pytest.fixture(scope="session")
def pet_dir(shared_data: Path) -> Path:
    """The 89-slice NEMA IQ PET reconstruction (no manufacturer, no Units)."""
    return shared_data / PET_RECON


@pytest.fixture(scope="session")
def pet_series(pet_dir: Path) -> Series:
    return read_one(pet_dir)


@pytest.fixture(scope="session")
def pet_datasets(pet_dir: Path) -> list[Dataset]:
    """The PET slices as pydicom data sets, ordered by z (their normal is +z)."""
    dss = [pydicom.dcmread(p) for p in sorted(pet_dir.glob("*.dcm"))]
    return sorted(dss, key=lambda d: float(d.ImagePositionPatient[2]))


@pytest.fixture(scope="session")
def pet_subset(pet_datasets: list[Dataset]) -> list[Dataset]:
    """Twelve consecutive slices through the spheres: small enough to rewrite quickly."""
    return pet_datasets[30:42]
