"""A CSV logger that appends to the ``metrics.csv`` of a resumed run instead of deleting it."""

from __future__ import annotations

import csv

from lightning.pytorch.loggers import CSVLogger as _LightningCSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment


class _AppendingCSVWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:  # Lightning deletes an existing metrics.csv here
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                self.metrics_keys = list(csv.DictReader(f).fieldnames or [])


class CSVLogger(_LightningCSVLogger):
    """Lightning's ``CSVLogger`` that appends to an existing ``metrics.csv`` (``resume=<run dir>``).

    Lightning's writer deletes the file of the run being resumed. Rows of steps logged after the checkpoint and
    before a kill appear twice; the later rows are the resumed run's.
    """

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingCSVWriter(log_dir=self.log_dir)
        return self._experiment
