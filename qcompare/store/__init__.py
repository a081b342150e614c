"""What a run leaves behind: the Parquet result cache, the baseline pass and per-token scores."""
