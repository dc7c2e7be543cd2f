"""The ingestion pipeline: lock, stage, merge, derive, orphans (one transaction per workbook)."""
