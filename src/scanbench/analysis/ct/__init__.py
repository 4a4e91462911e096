"""CT analyses: importing this package registers them (water QC, MTF, NPS, dose verification)."""
