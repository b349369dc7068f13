"""The offline W&B reader the tests use: :mod:`liif_sr.training.loggers.wandb_records`."""

from liif_sr.training.loggers.wandb_records import WandbRecords, read_job, read_run, run_files  # noqa: F401
