"""Patient dose and workflow from clinical DICOM: CT and radiopharmaceutical dose
reports, SSDE, effective dose, reference levels, exam and uptake timings."""
