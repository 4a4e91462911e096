"""Pixel data: size checks before decoding, then one decode per file.

The stored values are returned untouched (no rescale, no VOI, no
MONOCHROME1 inversion): the Modality LUT (Rescale Slope/Intercept, PS3.3
C.11.1) is applied per frame by the caller, because PET slices each carry
their own slope.

Memory guard: before anything is allocated, the size the header asks for
(Rows × Columns × frames × samples × bytes, PS3.5 §8.1.1) is checked against
the limits below (:func:`check_declared_size`), then against the bytes actually
present (native transfer syntaxes, PS3.5 §A.1–A.3), or against what the
codestream itself declares and what the compression could possibly expand to
(encapsulated syntaxes, PS3.5 §A.4). A damaged or hostile header is refused
with an :class:`~scanbench.errors.InputError` naming the file, before any
decoding: a few MB of RLE (PS3.5 Annex G) can declare frames of 16000 × 16000.

Limits (each held as float32, 4 bytes a voxel, the form analyses use), set by
rebinding the module constant or by the environment variable:

- ``MAX_ROWS_COLUMNS`` (``SCANBENCH_MAX_ROWS_COLUMNS``, default 8192): Rows
  (0028,0010) and Columns (0028,0011) of one frame. CT, MR and PET images are
  at most 1024 (some 2048); digital radiography and mammography detectors reach
  about 4300 × 4300 and 4096 × 5600 pixels.
- ``MAX_INSTANCE_BYTES`` (``SCANBENCH_MAX_INSTANCE_MIB``, default 1 GiB): all
  frames of one instance.
- ``MAX_SERIES_BYTES`` (``SCANBENCH_MAX_SERIES_MIB``, default 1 GiB): all
  instances of one series, counted file by file while a series is read, so that
  a series over the limit is refused before its remaining files are decoded.
"""

from __future__ import annotations

import io
import os
import struct
from functools import lru_cache
from itertools import pairwise
from pathlib import Path

import numpy as np
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag
from pydicom.uid import UID, RLELossless

from scanbench.dicom import headers as h
from scanbench.errors import InputError, ScanbenchError

#: Largest float32 volume one series may occupy, in bytes (module docstring).
MAX_SERIES_BYTES = 1 << 30
#: Largest float32 size of the frames of one instance, in bytes.
MAX_INSTANCE_BYTES = 1 << 30
#: Largest Rows or Columns of one frame.
MAX_ROWS_COLUMNS = 8192

#: PackBits (the RLE of PS3.5 §G.3.1) turns at most 2 input bytes into 128 output bytes.
_RLE_MAX_EXPANSION = 64

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_PIXEL_DATA = BaseTag(0x7FE00010)


def has_pixels(ds: Dataset) -> bool:
    """True if the data set holds any of the three Pixel Data elements (PS3.3 C.7.6.3)."""
    return any(h.has(ds, kw) for kw in PIXEL_KEYWORDS)


def frame_count(ds: Dataset, where: str | Path) -> int:
    """Number of Frames (0028,0008), 1 when absent (single-frame IODs)."""
    if not h.has(ds, "NumberOfFrames"):
        return 1
    n = h.integer(ds, "NumberOfFrames")
    if n is None or n < 1:
        raise InputError(f"Number of Frames (0028,0008) is {h.text(ds, 'NumberOfFrames')!r}, "
                         "not a positive integer", where)
    return n


def _env_limit(name: str, default: int, unit: int) -> int:
    """A limit from the environment variable ``name`` (in ``unit`` bytes), else ``default``."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or value * unit > 2**62:
        raise ScanbenchError(f"environment variable {name}={raw!r}: expected a positive number")
    return int(value * unit)


def max_rows_columns() -> int:
    """``SCANBENCH_MAX_ROWS_COLUMNS`` or :data:`MAX_ROWS_COLUMNS`."""
    return _env_limit("SCANBENCH_MAX_ROWS_COLUMNS", MAX_ROWS_COLUMNS, 1)


def max_instance_bytes() -> int:
    """``SCANBENCH_MAX_INSTANCE_MIB`` (MiB) or :data:`MAX_INSTANCE_BYTES`."""
    return _env_limit("SCANBENCH_MAX_INSTANCE_MIB", MAX_INSTANCE_BYTES, 1 << 20)


def max_series_bytes() -> int:
    """``SCANBENCH_MAX_SERIES_MIB`` (MiB) or :data:`MAX_SERIES_BYTES`."""
    return _env_limit("SCANBENCH_MAX_SERIES_MIB", MAX_SERIES_BYTES, 1 << 20)


def check_declared_size(ds: Dataset, where: str | Path) -> int:
    """Check the pixel size the header declares against the limits, before decoding.

    The size is Rows × Columns × Number of Frames × Samples per Pixel (PS3.5
    §8.1.1, PS3.3 C.7.6.3) held as float32, or as the stored type when wider
    (Bits Allocated 64, Double Float Pixel Data). Returns it in bytes; raises
    InputError naming ``where`` when Rows or Columns exceed
    :func:`max_rows_columns` or the size exceeds :func:`max_instance_bytes`.
    """
    rows, cols = h.integer(ds, "Rows"), h.integer(ds, "Columns")
    if not rows or not cols or rows < 1 or cols < 1:
        raise InputError(f"Rows (0028,0010) × Columns (0028,0011) is "
                         f"{h.text(ds, 'Rows')!r} × {h.text(ds, 'Columns')!r}; "
                         "an image needs both positive", where)
    largest = max_rows_columns()
    if rows > largest or cols > largest:
        raise InputError(
            f"header declares frames of {rows} rows × {cols} columns, more than the "
            f"{largest} allowed (scanbench.dicom.pixels.MAX_ROWS_COLUMNS, "
            "SCANBENCH_MAX_ROWS_COLUMNS); refused before decoding", where)
    frames = frame_count(ds, where)
    samples = max(h.integer(ds, "SamplesPerPixel") or 1, 1)
    bits = h.integer(ds, "BitsAllocated") or 0
    if "DoubleFloatPixelData" in ds:
        bits = 64
    size = rows * cols * frames * samples * max(4, (bits + 7) // 8)
    limit = max_instance_bytes()
    if size > limit:
        raise InputError(
            f"header asks for {rows} × {cols} × {frames} frames"
            + (f" × {samples} samples" if samples > 1 else "")
            + f" = {size / 2**20:.0f} MiB as float32, more than the {limit / 2**20:.0f} MiB "
            "limit per instance (scanbench.dicom.pixels.MAX_INSTANCE_BYTES, "
            "SCANBENCH_MAX_INSTANCE_MIB); refused before decoding", where)
    return size


def check_encapsulated(ds: Dataset, where: str | Path) -> None:
    """Encapsulated Pixel Data (PS3.5 §A.4) checked against the header without decoding:
    fragments for every frame, RLE segment headers and the size RLE can expand to (PS3.5
    Annex G), the JPEG / JPEG 2000 codestream's own rows and columns. Native data,
    float data and unknown transfer syntaxes are left alone. Raises InputError naming
    ``where``; the node runs it at ingest, so a sender hears of a damaged instance."""
    if not h.has(ds, "PixelData") or not hasattr(ds, "file_meta"):
        return
    tsyntax = UID(str(getattr(ds.file_meta, "TransferSyntaxUID", "") or "1.2.840.10008.1.2"))
    try:
        compressed, _little = _syntax(tsyntax)
    except ValueError:
        return
    if not compressed:
        return
    check_declared_size(ds, where)  # Rows and Columns positive, and within the limits
    rows, cols = int(h.integer(ds, "Rows") or 0), int(h.integer(ds, "Columns") or 0)
    frames = frame_count(ds, where)
    samples = max(h.integer(ds, "SamplesPerPixel") or 1, 1)
    bits = h.integer(ds, "BitsAllocated")
    if bits not in (8, 16, 32):
        raise InputError(f"Bits Allocated (0028,0100) is {h.text(ds, 'BitsAllocated')!r}; "
                         "expected 8, 16 or 32", where)
    try:
        data = ds.PixelData
    except Exception as exc:
        raise InputError(f"Pixel Data (7FE0,0010) cannot be read: {exc}", where) from exc
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InputError("Pixel Data (7FE0,0010) holds no bytes", where)
    _check_encapsulated(bytes(data), tsyntax, rows, cols, frames,
                        rows * cols * frames * samples * (bits // 8), where)


def decode(ds: Dataset, where: Path) -> np.ndarray:
    """Stored pixel values of every frame, shape ``(frames, rows, columns)``.

    Raises InputError naming ``where`` when the header is absurd, the pixel
    data is shorter than the header says (a truncated file), or decoding fails.
    """
    check_declared_size(ds, where)
    rows, cols = int(h.integer(ds, "Rows") or 0), int(h.integer(ds, "Columns") or 0)
    frames = frame_count(ds, where)
    samples = h.integer(ds, "SamplesPerPixel") or 1
    if samples != 1:
        raise InputError(f"Samples per Pixel (0028,0002) is {samples} (colour); "
                         "only single-sample (greyscale) images form a scalar volume", where)
    voxels = rows * cols * frames

    if not h.has(ds, "PixelData"):
        return _float_pixels(ds, rows, cols, frames, where)

    bits = h.integer(ds, "BitsAllocated")
    if bits not in (8, 16, 32):
        raise InputError(f"Bits Allocated (0028,0100) is {h.text(ds, 'BitsAllocated')!r}; "
                         "expected 8, 16 or 32 for a greyscale image", where)
    stored = h.integer(ds, "BitsStored") or bits
    if not 1 <= stored <= bits:
        raise InputError(f"Bits Stored (0028,0101) is {stored}, outside 1..{bits}", where)
    signed = h.integer(ds, "PixelRepresentation") == 1
    tsyntax = UID(str(getattr(ds.file_meta, "TransferSyntaxUID", "") or "1.2.840.10008.1.2")
                  if hasattr(ds, "file_meta") else "1.2.840.10008.1.2")
    nbytes = voxels * (bits // 8)
    data = _unconverted_bytes(ds, nbytes)
    if data is None:
        try:
            data = ds.PixelData
        except Exception as exc:
            raise InputError(f"Pixel Data (7FE0,0010) cannot be read: {exc}", where) from exc
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InputError("Pixel Data (7FE0,0010) holds no bytes", where)

    compressed, little = _syntax(tsyntax)
    if compressed:
        _check_encapsulated(data, tsyntax, rows, cols, frames, nbytes, where)
        try:
            from pydicom.pixels import pixel_array

            arr = np.asarray(pixel_array(ds))
        except Exception as exc:
            raise InputError(f"cannot decode {tsyntax.name} pixel data: "
                             f"{type(exc).__name__}: {exc}", where) from exc
        except BaseException as exc:
            # pylibjpeg-rle is Rust: a damaged stream raises pyo3's PanicException,
            # which derives from BaseException.
            if type(exc).__name__ != "PanicException":
                raise
            raise InputError(f"cannot decode {tsyntax.name} pixel data: the decoder "
                             f"failed on damaged data ({exc})", where) from exc
        if arr.size != voxels:
            raise InputError(f"decoded {arr.size} pixels but the header says "
                             f"{rows} × {cols} × {frames}", where)
        arr = arr.reshape(frames, rows, cols)
        if arr.dtype.kind not in "iu":
            raise InputError(f"decoded pixels have type {arr.dtype}, not integers", where)
        return arr

    if len(data) < nbytes:
        raise InputError(
            f"truncated: Pixel Data (7FE0,0010) has {len(data)} bytes but Rows × Columns × "
            f"frames × bytes = {rows} × {cols} × {frames} × {bits // 8} needs {nbytes}", where)
    order = "<" if little else ">"
    dtype = np.dtype(f"{order}{'i' if signed else 'u'}{bits // 8}")
    arr = np.frombuffer(data, dtype=dtype, count=voxels).reshape(frames, rows, cols)
    if stored < bits:
        arr = _unused_bits(arr, stored, signed)
    return arr


@lru_cache(maxsize=64)
def _syntax(tsyntax: UID) -> tuple[bool, bool]:
    """(encapsulated, little endian) for a transfer syntax; Deflated Explicit VR Little
    Endian counts as native (pydicom inflated it while parsing). Raises ValueError,
    as pydicom does, for a UID that is not a transfer syntax."""
    deflated = tsyntax == "1.2.840.10008.1.2.1.99"
    return (tsyntax.is_compressed and not deflated), (deflated or tsyntax.is_little_endian)


def _unconverted_bytes(ds: Dataset, nbytes: int) -> bytes | None:
    """The still-unconverted bytes of Pixel Data (7FE0,0010) when they can be used as
    they are (pydicom's OB/OW conversion returns the bytes unchanged, and converting
    costs more than the rest of decoding). None — use ``ds.PixelData`` — for anything
    else: a converted, short, undefined-length (encapsulated) or otherwise typed
    element, so that every odd case keeps pydicom's handling."""
    elem = ds._dict.get(_PIXEL_DATA)
    if (isinstance(elem, RawDataElement) and elem.VR in (None, "OB", "OW", "OB or OW")
            and elem.length != 0xFFFFFFFF and isinstance(elem.value, bytes)
            and len(elem.value) >= nbytes):
        return elem.value
    return None


def _unused_bits(arr: np.ndarray, stored: int, signed: bool) -> np.ndarray:
    """Clear bits above Bits Stored and sign-extend signed values (PS3.5 §8.1.1)."""
    bits = arr.dtype.itemsize * 8
    if signed:
        shift = bits - stored
        return (arr << shift) >> shift
    mask = (1 << stored) - 1
    if int(arr.max(initial=0)) <= mask:
        return arr
    return arr & arr.dtype.type(mask)


def _float_pixels(ds: Dataset, rows: int, cols: int, frames: int, where: Path) -> np.ndarray:
    """Float Pixel Data (7FE0,0008) / Double Float Pixel Data (7FE0,0009), PS3.3 C.7.6.24."""
    kw, dtype = (("FloatPixelData", np.dtype("<f4")) if "FloatPixelData" in ds
                 else ("DoubleFloatPixelData", np.dtype("<f8")))
    try:
        data = ds[kw].value
    except Exception as exc:
        raise InputError(f"{kw} cannot be read: {exc}", where) from exc
    need = rows * cols * frames * dtype.itemsize
    if not isinstance(data, bytes | bytearray) or len(data) < need:
        have = len(data) if isinstance(data, bytes | bytearray) else 0
        raise InputError(f"truncated: {kw} has {have} bytes, the header needs {need}", where)
    return np.frombuffer(data, dtype=dtype, count=rows * cols * frames).reshape(frames, rows, cols)


def _check_encapsulated(data: bytes, tsyntax: UID, rows: int, cols: int, frames: int,
                        nbytes: int, where: str | Path) -> None:
    """Refuse encapsulated pixel data that cannot hold what the header claims (PS3.5 §A.4).

    Checks the fragment count against Number of Frames, the first frame's
    codestream dimensions (JPEG SOF, JPEG 2000 SIZ) against Rows × Columns, and
    for RLE that the fragments could expand to the header's size at all.
    """
    from pydicom.encaps import get_frame, parse_fragments

    try:
        buffer = io.BytesIO(data)
        buffer.seek(8 + _bot_length(data))
        n_fragments, _ = parse_fragments(buffer)
        first = get_frame(data, 0, number_of_frames=frames)
    except Exception as exc:
        raise InputError(f"encapsulated Pixel Data (7FE0,0010) is damaged: {exc}", where) from exc
    if n_fragments < frames:
        raise InputError(f"Number of Frames (0028,0008) is {frames} but the encapsulated pixel "
                         f"data holds only {n_fragments} fragment(s)", where)
    if tsyntax == RLELossless:
        if len(data) * _RLE_MAX_EXPANSION < nbytes:
            raise InputError(f"RLE pixel data of {len(data)} bytes cannot expand to the "
                             f"{nbytes} bytes Rows × Columns × frames needs", where)
        _check_rle_headers(data, frames, nbytes // (rows * cols * frames), where)
        return
    dims = codestream_dimensions(first)
    if dims is not None and dims != (rows, cols):
        raise InputError(f"the compressed frame is {dims[0]} rows × {dims[1]} columns but the "
                         f"header says Rows {rows} × Columns {cols}", where)


def _check_rle_headers(data: bytes, frames: int, segments: int, where: str | Path) -> None:
    """Each RLE frame opens with a 64-byte header: the number of segments (one per byte
    of a sample) and their ascending offsets, the first 64 (PS3.5 §G.5)."""
    from pydicom.encaps import generate_frames

    try:
        for n, frame in enumerate(generate_frames(data, number_of_frames=frames)):
            if len(frame) < 64:
                raise ValueError(f"frame {n + 1} is {len(frame)} bytes, shorter than its header")
            header = struct.unpack("<16I", frame[:64])
            count, offsets = header[0], header[1:1 + header[0]]
            if count != segments:
                raise ValueError(f"frame {n + 1} has {count} segments, the header needs "
                                 f"{segments}")
            if (offsets[0] != 64 or any(b <= a for a, b in pairwise(offsets))
                    or offsets[-1] >= len(frame)):
                raise ValueError(f"frame {n + 1} has segment offsets {list(offsets)} that do "
                                 f"not fit its {len(frame)} bytes")
    except ValueError as exc:
        raise InputError(f"damaged RLE pixel data: {exc}", where) from exc


def _bot_length(data: bytes) -> int:
    """Length of the Basic Offset Table item that opens encapsulated data."""
    if len(data) < 8 or data[:4] != b"\xfe\xff\x00\xe0":
        raise ValueError("no Basic Offset Table item at the start of encapsulated data")
    return int(struct.unpack("<I", data[4:8])[0])


def codestream_dimensions(frame: bytes) -> tuple[int, int] | None:
    """(rows, columns) declared inside a JPEG (SOF) or JPEG 2000 (SIZ) codestream, if found."""
    head = bytes(frame[:4096])
    j2k = head.find(b"\xff\x4f\xff\x51")
    if j2k >= 0 and len(head) >= j2k + 24:
        # SIZ: Lsiz(2) Rsiz(2) Xsiz(4) Ysiz(4) XOsiz(4) YOsiz(4), ISO/IEC 15444-1 A.5.1
        xsiz, ysiz, xo, yo = struct.unpack(">IIII", head[j2k + 8:j2k + 24])
        return ysiz - yo, xsiz - xo
    if head[:2] != b"\xff\xd8":
        return None
    pos = 2
    while pos + 9 <= len(head):
        if head[pos] != 0xFF:
            return None
        marker = head[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = struct.unpack(">H", head[pos + 2:pos + 4])[0]
        # SOF0..SOF15 except DHT (C4), JPG (C8), DAC (CC); JPEG-LS SOF55 (F7), ITU-T T.81 B.2.2
        if (0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC)) or marker == 0xF7:
            height, width = struct.unpack(">HH", head[pos + 5:pos + 9])
            return height, width
        pos += 2 + length
    return None
