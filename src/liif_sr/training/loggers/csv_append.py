"""A CSV logger that appends to the ``metrics.csv`` of a resumed run instead of deleting it."""

from __future__ import annotations

import csv

from lightning.pytorch.loggers import CSVLogger as _LightningCSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment


class _AppendingCSVWriter(ExperimentWriter):
    _trim = False  # an existing file: rows at or past the first step logged now are a killed attempt's

    def _check_log_dir_exists(self) -> None:  # Lightning deletes an existing metrics.csv here
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                self.metrics_keys = list(csv.DictReader(f).fieldnames or [])
            self._trim = True

    def log_metrics(self, metrics_dict: dict[str, float], step: int | None = None) -> None:
        if self._trim and step is not None:
            self._trim = False
            self._drop_rows_from(int(step))
        super().log_metrics(metrics_dict, step)

    def _drop_rows_from(self, step: int) -> None:
        """Remove the rows of ``step`` and later: logged after the checkpoint this run continues, by an
        attempt that was killed; the continued run logs those steps again."""
        with self._fs.open(self.metrics_file_path, "r", newline="") as f:
            rows = list(csv.DictReader(f))
        kept = [r for r in rows if not (r.get("step") or "").isdigit() or int(r["step"]) < step]
        if len(kept) == len(rows):
            return
        tmp = f"{self.metrics_file_path}.tmp"
        with self._fs.open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.metrics_keys)
            writer.writeheader()
            writer.writerows(kept)
        self._fs.mv(tmp, self.metrics_file_path)


class CSVLogger(_LightningCSVLogger):
    """Lightning's ``CSVLogger`` that appends to an existing ``metrics.csv`` (``resume=<run dir>``).

    Lightning's writer deletes the file of the run being resumed. Rows of steps logged after the checkpoint and
    before a kill are removed when the continued run logs its first step (it logs them again): one row set per
    step.
    """

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingCSVWriter(log_dir=self.log_dir)
        return self._experiment
