"""Phantom geometry in millimetres, one module per phantom, shared by the analyses
and the virtual scanners so that both speak of the same object."""
