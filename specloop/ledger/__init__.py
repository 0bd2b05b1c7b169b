"""A run's records on disk: state, stage log, hash-chained transcript. All writes are atomic."""
