"""The node's services: the ingest pipeline (``pipeline.Pipeline``), the file store,
classification of what arrives, and the jobs that analyse it (local pool or Dask)."""
