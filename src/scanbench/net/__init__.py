"""DICOM networking of the node: storage SCP (pynetdicom) and DICOMweb pull."""
