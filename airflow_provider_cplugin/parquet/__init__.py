"""Arrow schemas per entity and atomic, streaming Parquet landing on any ObjectStoragePath."""
