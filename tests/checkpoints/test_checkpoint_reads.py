"""Each checkpoint is read once per process: ``liif-sr-train resume=R`` (the resume plan, the preflight and the
task all look at R's checkpoints) and ``liif-sr-eval`` (the preflight loads each model, the run uses it);
:mod:`liif_sr.file_cache` keys what was read by the file's version, so a replaced or rewritten file is read
again."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import pytest
import torch
from test_preflight import _main
from test_resume_refusals import RUN_OVERRIDES, _ckpt, _run

from liif_sr import file_cache
from liif_sr.training import integrity


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    from liif_sr.training import job_failure

    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setattr(job_failure, "FAILURES", [])  # failed sweep jobs recorded by other tests' sweeps
    file_cache.forget()
    yield
    file_cache.forget()


def _age(*paths: Path, seconds: float = 60) -> None:
    """Written a minute ago (a run resumed later; not within :data:`file_cache.RACY_S` of its last write)."""
    when = time.time() - seconds
    for p in paths:
        os.utime(p, (when, when))


def _count_reads(monkeypatch) -> tuple[Counter, Counter]:
    """(torch.load calls, sha256 computations) by file name."""
    loads: Counter = Counter()
    hashes: Counter = Counter()
    load, sha = torch.load, integrity.file_sha256

    def counting_load(f, *args, **kwargs):
        loads[Path(getattr(f, "name", f)).name] += 1
        return load(f, *args, **kwargs)

    def counting_sha(path):
        hashes[Path(path).name] += 1
        return sha(path)

    monkeypatch.setattr(torch, "load", counting_load)
    monkeypatch.setattr(integrity, "file_sha256", counting_sha)
    return loads, hashes


def test_a_resume_reads_each_checkpoint_once(tmp_path, monkeypatch, capsys):
    """The plan, the preflight and the task: one sha256 per checkpoint, one progress read (mmap: the pickle,
    no tensor data) per candidate and one config read of the continued one; Lightning's own load follows."""
    run = _run(tmp_path / "R", RUN_OVERRIDES, epochs=8, steps=80)
    _ckpt(run / "checkpoints" / "epoch_0003.ckpt", 4, 40)
    _age(*(run / "checkpoints").iterdir())
    loads, hashes = _count_reads(monkeypatch)
    fitted = []

    def fit(trainer, cfg, *, ckpt_path, **kwargs):
        fitted.append((ckpt_path, dict(loads), dict(hashes)))
        raise SystemExit(0)

    monkeypatch.setattr("liif_sr.training.interrupt.fit_or_interrupt", fit)
    code, err = _main(monkeypatch, capsys, tmp_path, f"resume={run}", "trainer.max_epochs=9")
    assert code == 0 and len(fitted) == 1, err
    ckpt_path, loads_at_fit, hashes_at_fit = fitted[0]
    assert ckpt_path == str(run / "checkpoints" / "last.ckpt")
    assert loads_at_fit == {"last.ckpt": 2, "epoch_0003.ckpt": 1}, loads_at_fit
    assert hashes_at_fit == {"last.ckpt": 1, "epoch_0003.ckpt": 1}, hashes_at_fit


def test_a_checkpoint_written_since_is_read_again(tmp_path):
    """A file replaced (rename: a new inode) or rewritten in place is read again; one modified within
    RACY_S seconds of its read is not remembered at all."""
    path = tmp_path / "last.ckpt"
    _ckpt(path, 2, 20)
    reads = []

    def read():
        reads.append(1)
        return integrity.file_sha256(path)

    first = file_cache.remembered("sha256", path, read)
    assert file_cache.remembered("sha256", path, read) == first and len(reads) == 2  # fresh: not kept
    _age(path)
    file_cache.remembered("sha256", path, read)
    assert file_cache.remembered("sha256", path, read) == first and len(reads) == 3  # kept
    _ckpt(path, 3, 30)  # replaced (AtomicCheckpointIO: temp file + rename)
    _age(path)
    assert file_cache.remembered("sha256", path, read) != first and len(reads) == 4
    data = bytearray(path.read_bytes())
    data[300] ^= 0xFF  # damaged in place, same size
    path.write_bytes(bytes(data))
    _age(path, seconds=30)
    assert file_cache.remembered("sha256", path, read) == integrity.file_sha256(path) and len(reads) == 5


def test_eval_reads_each_checkpoint_once(tmp_path, monkeypatch, capsys):
    """``liif-sr-eval``: the preflight loads each model (on the CPU) and hands it to the run, which would
    read the file again otherwise (an API ``evaluate(cfg)`` has no preflight: it reads it)."""
    import numpy as np
    from PIL import Image

    from liif_sr import checkpoints
    from liif_sr.checkpoints import save_weights
    from liif_sr.evaluate import main
    from liif_sr.models import EDSRBaseline, ImplicitSR, LIIFHead

    hr = tmp_path / "bench" / "Set5" / "HR"
    hr.mkdir(parents=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 20, 3), dtype=np.uint8)).save(hr / "a.png")
    monkeypatch.setenv("LIIF_SR_BENCHMARK_DIR", str(tmp_path / "bench"))
    monkeypatch.setenv("LIIF_SR_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    model = ImplicitSR(EDSRBaseline(n_resblocks=1, n_feats=4), LIIFHead(4, hidden_list=[8]))
    pth = tmp_path / "m.pth"
    torch.save({"format": "liif-sr", "model": model.config, "state_dict": model.state_dict()}, pth)
    st = save_weights(model, tmp_path / "w.safetensors")
    loads, _ = _count_reads(monkeypatch)
    reads: Counter = Counter()
    read_file = checkpoints.read_checkpoint_file

    def counting(path):
        reads[Path(path).name] += 1
        return read_file(path)

    monkeypatch.setattr(checkpoints, "read_checkpoint_file", counting)
    base = ["benchmark=[set5]", "scales=[2]", "progress=false", "plot=false", "ssim=false"]
    monkeypatch.setattr("sys.argv", ["liif-sr-eval", *base, f"checkpoint=[{pth},{st}]"])
    try:
        main()
    except SystemExit as exc:
        assert exc.code in (0, None), capsys.readouterr().err
    out = capsys.readouterr()
    assert "| m " in out.out + out.err or "m" in out.out, out
    assert dict(reads) == {"m.pth": 1, "w.safetensors": 1} and dict(loads) == {"m.pth": 1}
