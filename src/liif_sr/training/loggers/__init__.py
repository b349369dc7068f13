"""Logger set-up for ``conf/logger``: ``csv_append`` (a CSV logger that appends on resume) and ``wandb_run``
(the W&B run identity: a continued training continues its W&B run)."""
