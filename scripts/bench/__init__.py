"""Modules of the benchmark and GPU-run scripts (``bench_train.py``, ``bench_infer.py``, ``gpu_tools.py``); each
script puts its own folder on ``sys.path`` and imports them as ``bench.*``."""
