"""Datasets on disk: ``manifest`` (what DIV2K / the benchmark sets are, where they live, the missing-data
message) and ``fetch`` (``liif-sr download``: verified, resumable, atomic)."""
