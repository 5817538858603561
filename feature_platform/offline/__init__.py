"""The offline store: Delta tables, storage paths (local, S3), table maintenance and the statistics table."""
