"""The DICOM layer: read files, folders and zips into :class:`scanbench.types.Series`.

``read(paths)`` returns a :class:`ReadResult` (series, skipped files, non-image
objects, errors); ``read_one(path)`` returns the single series under a path.
"""

from __future__ import annotations

from scanbench.dicom.pet import decay_factor, suv_bw_scale
from scanbench.dicom.pixels import MAX_SERIES_BYTES
from scanbench.dicom.read import ReadResult, read, read_one

__all__ = ["MAX_SERIES_BYTES", "ReadResult", "decay_factor", "read", "read_one",
           "suv_bw_scale"]
