"""CT and MR header facts (PS3.3 C.8.2.1 CT Image, C.8.3.1 MR Image).

Classic images carry these tags at the top level. Enhanced multi-frame images
(C.8.15 Enhanced CT, C.8.13 Enhanced MR) carry them inside functional-group
macros, either shared by every frame or per frame: :func:`find` looks at the
top level, then the shared groups, then the first frame's groups, one level of
macro deep, which is where PS3.3 puts every tag read here.
"""

from __future__ import annotations

from collections.abc import Iterator

from pydicom.dataset import Dataset

from scanbench.dicom import headers as h
from scanbench.types import CtFacts, MrFacts

# CTDI Phantom Type Code Sequence (0018,9346), DCM codes (PS3.16 CID 4052).
_CTDI_PHANTOM_CM = {"113690": 16, "113691": 32, "113692": 32}  # head 16, body 32, (32 cm)


def _places(ds: Dataset) -> Iterator[Dataset]:
    yield ds
    for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        group = h.item(ds, groups)
        if group is None:
            continue
        yield group
        for elem in group:
            if elem.VR == "SQ" and len(elem.value):
                yield elem.value[0]


def find(ds: Dataset, keyword: str) -> Dataset | None:
    """The data set (top level or a functional-group macro item) holding ``keyword``."""
    for place in _places(ds):
        if h.raw(place, keyword) is not None:
            return place
    return None


def _num(ds: Dataset, *keywords: str, scale: float = 1.0) -> float | None:
    for kw in keywords:
        place = find(ds, kw)
        if place is not None:
            v = h.number(place, kw)
            if v is not None:
                return v * scale
    return None


def _text(ds: Dataset, *keywords: str) -> str | None:
    for kw in keywords:
        place = find(ds, kw)
        if place is not None:
            v = h.text(place, kw)
            if v is not None:
                return v
    return None


def ct_facts(ds: Dataset) -> CtFacts:
    """CtFacts of one CT header; missing tags give None."""
    phantom_cm = None
    place = find(ds, "CTDIPhantomTypeCodeSequence")
    if place is not None:
        code = h.text(h.item(place, "CTDIPhantomTypeCodeSequence"), "CodeValue")
        phantom_cm = _CTDI_PHANTOM_CM.get(code or "")
    return CtFacts(
        kvp=_num(ds, "KVP"),
        tube_current_ma=_num(ds, "XRayTubeCurrent", "XRayTubeCurrentInmA"),
        exposure_time_s=_num(ds, "ExposureTime", "ExposureTimeInms", scale=1e-3),
        exposure_mas=_num(ds, "Exposure", "ExposureInmAs"),
        rotation_time_s=_num(ds, "RevolutionTime"),
        pitch=_num(ds, "SpiralPitchFactor"),
        total_collimation_mm=_num(ds, "TotalCollimationWidth"),
        single_collimation_mm=_num(ds, "SingleCollimationWidth"),
        kernel=_text(ds, "ConvolutionKernel"),
        reconstruction_diameter_mm=_num(ds, "ReconstructionDiameter"),
        slice_thickness_mm=_num(ds, "SliceThickness"),
        ctdivol_mgy=_num(ds, "CTDIvol"),
        ctdi_phantom_cm=phantom_cm,
        exposure_modulation=_text(ds, "ExposureModulationType"),
        pixel_padding_value=_num(ds, "PixelPaddingValue"),
        scan_options=_text(ds, "ScanOptions"),
    )


def mr_facts(ds: Dataset) -> MrFacts:
    """MrFacts of one MR header; missing tags give None."""
    matrix = None
    place = find(ds, "AcquisitionMatrix")
    if place is not None:
        values = h.numbers(place, "AcquisitionMatrix")
        if values is not None and len(values) == 4:
            matrix = (int(values[0]), int(values[1]), int(values[2]), int(values[3]))
    in_plane = _num(ds, "ParallelReductionFactorInPlane")
    out_plane = _num(ds, "ParallelReductionFactorOutOfPlane")
    factor = None
    if in_plane is not None or out_plane is not None:
        factor = (in_plane or 1.0) * (out_plane or 1.0)
    flag = _text(ds, "ParallelAcquisition")
    parallel = None if flag is None else flag.upper() == "YES"
    if factor is not None and factor > 1.0:
        parallel = True
    steps = _num(ds, "NumberOfPhaseEncodingSteps")
    return MrFacts(
        field_strength_t=_num(ds, "MagneticFieldStrength"),
        imaging_frequency_mhz=_num(ds, "ImagingFrequency"),
        sequence_name=_text(ds, "SequenceName", "PulseSequenceName"),
        scanning_sequence=_text(ds, "ScanningSequence", "EchoPulseSequence"),
        repetition_time_ms=_num(ds, "RepetitionTime"),
        echo_time_ms=_num(ds, "EchoTime", "EffectiveEchoTime"),
        inversion_time_ms=_num(ds, "InversionTime", "InversionTimes"),
        flip_angle_deg=_num(ds, "FlipAngle"),
        pixel_bandwidth_hz=_num(ds, "PixelBandwidth"),
        averages=_num(ds, "NumberOfAverages"),
        phase_encoding_steps=int(steps) if steps is not None else None,
        acquisition_matrix=matrix,
        phase_encoding_direction=_text(ds, "InPlanePhaseEncodingDirection"),
        receive_coil=_text(ds, "ReceiveCoilName"),
        parallel_factor=factor,
        parallel_imaging=parallel,
    )
