"""Run records on disk, the audit store, and the files a run writes."""
