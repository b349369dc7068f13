"""Paper-protocol evaluation behind ``liif-sr-eval``: ``runner`` (the flow), ``report`` (tables, plot,
loggers), ``benchmarks`` (reading the benchmark sets and their LR). Entry point: :mod:`liif_sr.evaluate`."""
