"""A console entry called in-process (``liif_sr.train.main``: tests, notebooks) leaves logging as it found it:
Hydra's console handler (on the ``sys.stdout`` of the run) and its ``train.log`` handler are closed and removed
when the run ends, so later log lines neither go into the finished run's log nor to a stream closed since
(the ``Logging error ... I/O operation on closed file`` of full-suite logs)."""

from __future__ import annotations

import io
import logging
import sys

from test_train import TINY


def test_an_in_process_run_leaves_no_handler_behind(tmp_path, monkeypatch, capsys):
    from liif_sr.train import main

    run = tmp_path / "run"
    args = [*TINY, "trainer.max_steps=1", "callbacks.quickstart_report=null", "export_weights=false"]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["liif-sr-train", *args, f"paths.log_dir={tmp_path}/logs"])
    monkeypatch.setattr(sys, "argv", [*sys.argv, f"hydra.run.dir={run}"])
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    stdout = io.StringIO()  # the caller's stream during the run (pytest's capture, a notebook cell's)
    monkeypatch.setattr(sys, "stdout", stdout)
    try:
        main()
    except SystemExit as exc:
        assert not exc.code, capsys.readouterr().err
    assert "model: edsr_baseline" in (run / "train.log").read_text()  # Hydra's handlers were there meanwhile
    assert "model: edsr_baseline" in stdout.getvalue()
    assert (list(root.handlers), root.level) == before

    stdout.close()  # the caller's stream is gone (pytest closes a test's capture at its end)
    logging.getLogger("liif_sr.train").warning("a line after the run")
    assert "Logging error" not in capsys.readouterr().err
    assert "a line after the run" not in (run / "train.log").read_text()
