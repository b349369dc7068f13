"""Datasets on disk: ``manifest`` (what DIV2K / the benchmark sets are, where they live, the missing-data
message), ``fetch`` (``liif-sr download``: verified, resumable) and ``extract`` (safe, atomic unpacking)."""
