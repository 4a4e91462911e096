"""HTML and PDF reports, and the shared Plotly figure helpers the analyses use."""
