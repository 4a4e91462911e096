"""The programme layer (issue 14): federation, expert review, reader studies, usability,
training and the multi-site report."""
