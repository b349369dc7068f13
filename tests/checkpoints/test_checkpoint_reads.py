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
    no tensor data) per candidate, which also serves the continued one's config; Lightning's own load follows."""
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
    assert loads_at_fit == {"last.ckpt": 1, "epoch_0003.ckpt": 1}, loads_at_fit
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


def _tiny_benchmark(tmp_path, monkeypatch) -> None:
    """A one-image Set5 under ``tmp_path/bench``, logs under ``tmp_path/logs``, ``tmp_path`` the working folder."""
    import numpy as np
    from PIL import Image

    hr = tmp_path / "bench" / "Set5" / "HR"
    hr.mkdir(parents=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 20, 3), dtype=np.uint8)).save(hr / "a.png")
    monkeypatch.setenv("LIIF_SR_BENCHMARK_DIR", str(tmp_path / "bench"))
    monkeypatch.setenv("LIIF_SR_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.chdir(tmp_path)


def _eval_counting_reads(monkeypatch, capsys, checkpoint: str, key) -> tuple[Counter, object]:
    """``liif-sr-eval checkpoint=<checkpoint>`` on Set5 ×2 (exit 0 expected): the reads of each checkpoint file,
    counted under ``key(path)``, and the captured output."""
    from liif_sr import checkpoints
    from liif_sr.evaluate import main

    reads: Counter = Counter()
    read_file = checkpoints.read_checkpoint_file

    def counting(path):
        reads[key(path)] += 1
        return read_file(path)

    monkeypatch.setattr(checkpoints, "read_checkpoint_file", counting)
    base = ["benchmark=[set5]", "scales=[2]", "progress=false", "plot=false", "ssim=false"]
    monkeypatch.setattr("sys.argv", ["liif-sr-eval", *base, f"checkpoint={checkpoint}"])
    try:
        main()
    except SystemExit as exc:
        assert exc.code in (0, None), capsys.readouterr().err
    return reads, capsys.readouterr()


def test_eval_reads_each_checkpoint_once(tmp_path, monkeypatch, capsys):
    """``liif-sr-eval``: the preflight loads each model (on the CPU) and hands it to the run, which would
    read the file again otherwise (an API ``evaluate(cfg)`` has no preflight: it reads it)."""

    from liif_sr.checkpoints import save_weights
    from liif_sr.models import EDSRBaseline, ImplicitSR, LIIFHead

    _tiny_benchmark(tmp_path, monkeypatch)
    torch.manual_seed(0)
    model = ImplicitSR(EDSRBaseline(n_resblocks=1, n_feats=4), LIIFHead(4, hidden_list=[8]))
    pth = tmp_path / "m.pth"
    torch.save({"format": "liif-sr", "model": model.config, "state_dict": model.state_dict()}, pth)
    st = save_weights(model, tmp_path / "w.safetensors")
    loads, _ = _count_reads(monkeypatch)
    reads, out = _eval_counting_reads(monkeypatch, capsys, f"[{pth},{st}]", lambda p: Path(p).name)
    assert "| m " in out.out + out.err or "m" in out.out, out
    assert dict(reads) == {"m.pth": 1, "w.safetensors": 1} and dict(loads) == {"m.pth": 1}


def _loads_by_path(monkeypatch) -> Counter:
    """torch.load calls by file path (jobs of a sweep share their file names)."""
    loads: Counter = Counter()
    load = torch.load

    def counting_load(f, *args, **kwargs):
        loads[str(Path(f if isinstance(f, str | os.PathLike) else f.name).resolve())] += 1
        return load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    return loads


def test_the_progress_read_serves_the_config(tmp_path, monkeypatch):
    """A resume reads a checkpoint's progress (memory-mapped) and then its model config: one torch.load;
    the config is the one a read of its own gives. A file replaced since is read again."""
    from liif_sr.checkpoints import read_config
    from liif_sr.training.resume import read_progress

    path = tmp_path / "last.ckpt"
    _ckpt(path, 2, 20)
    _age(path)
    alone = read_config(path)
    file_cache.forget()
    loads = _loads_by_path(monkeypatch)
    assert read_progress(path).steps == 20
    assert read_config(path) == alone and alone["head"]["name"] == "liif"
    assert read_progress(path).steps == 20 and sum(loads.values()) == 1, loads
    _ckpt(path, 3, 30)  # replaced: both read again, once
    _age(path)
    assert read_progress(path).steps == 30 and read_config(path) == alone and sum(loads.values()) == 2


def test_a_progress_read_of_no_model_checkpoint_keeps_no_config(tmp_path, monkeypatch):
    """A Lightning checkpoint without a liif-sr model config: its progress is read, read_config still
    refuses it in one line (nothing kept in its name)."""
    from liif_sr.checkpoints import read_config
    from liif_sr.errors import CheckpointError
    from liif_sr.training.resume import read_progress

    path = tmp_path / "other.ckpt"
    torch.save({"global_step": 5, "epoch": 0, "state_dict": {}}, path)
    _age(path)
    assert read_progress(path).steps == 5
    with pytest.raises(CheckpointError, match="not a liif-sr or official"):
        read_config(path)


def test_a_sweep_resume_reads_each_jobs_checkpoint_once(tmp_path, monkeypatch, capsys):
    """``resume=<multirun folder>``: the plan reads every job's progress and config, job 0's task its
    checkpoint again: one torch.load per job's last.ckpt."""
    from test_resume_refusals import _sweep

    sweep = _sweep(tmp_path / "S")
    _age(*sweep.glob("*/checkpoints/*"))
    loads = _loads_by_path(monkeypatch)
    fitted = []

    def fit(trainer, cfg, *, ckpt_path, **kwargs):
        fitted.append((ckpt_path, dict(loads)))
        raise SystemExit(0)

    monkeypatch.setattr("liif_sr.training.interrupt.fit_or_interrupt", fit)
    code, err = _main(monkeypatch, capsys, tmp_path, f"resume={sweep}")
    assert fitted, err
    ckpt_path, loads_at_fit = fitted[0]
    assert ckpt_path == str(sweep / "0" / "checkpoints" / "last.ckpt")
    want = {str((sweep / n / "checkpoints" / "last.ckpt").resolve()): 1 for n in ("0", "1")}
    assert loads_at_fit == want, loads_at_fit


def test_eval_of_a_multirun_reads_each_job_once(tmp_path, monkeypatch, capsys):
    """``liif-sr-eval checkpoint=<multirun folder>``: jobs named from their weights (no .hydra, no
    summary.json) are read once each (the start-up check loads them before it names the rows)."""

    from liif_sr.checkpoints import save_weights
    from liif_sr.models.build import build_model

    _tiny_benchmark(tmp_path, monkeypatch)
    tiny = {"encoder": {"name": "edsr_baseline", "args": {"n_resblocks": 1, "n_feats": 4}},
            "head": {"hidden_list": [8], "local_ensemble": False}}  # fmt: skip
    sweep = tmp_path / "multiruns" / "x"
    (sweep / "2").mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    for job, file in (("0", "model.safetensors"), ("1", "model.safetensors"), ("2", "checkpoints/last.ckpt")):
        (sweep / job / file).parent.mkdir(parents=True, exist_ok=True)
        save_weights(build_model(tiny), sweep / job / file)
    _age(*sweep.glob("*/model.safetensors"), sweep / "2" / "checkpoints" / "last.ckpt")
    loads = _loads_by_path(monkeypatch)
    reads, out = _eval_counting_reads(
        monkeypatch, capsys, str(sweep), lambda p: Path(p).relative_to(sweep).as_posix()
    )
    assert "edsr_baseline-liif (job 2)" in out.out + out.err, out
    assert dict(reads) == {"0/model.safetensors": 1, "1/model.safetensors": 1, "2/checkpoints/last.ckpt": 1}
    assert list(loads.values()) == [1], loads


@pytest.mark.parametrize("sweep", [False, True])
def test_init_weights_are_read_once(tmp_path, monkeypatch, capsys, sweep):
    """``init_weights=<file>``: the start-up check loads it and hands the model to the run (a sweep's jobs
    that start from the same network share that one load; the task of job 0 takes it)."""
    from test_preflight import _compose

    from liif_sr import checkpoints
    from liif_sr.checkpoints import save_weights
    from liif_sr.models.build import build_model
    from liif_sr.training.preflight import requested_net_config

    torch.manual_seed(0)
    weights = save_weights(build_model(requested_net_config(_compose())), tmp_path / "w.safetensors")
    reads: Counter = Counter()
    read_file = checkpoints.read_checkpoint_file

    def counting(path):
        reads[Path(path).name] += 1
        return read_file(path)

    monkeypatch.setattr(checkpoints, "read_checkpoint_file", counting)
    fitted = []

    def fit(trainer, cfg, *, ckpt_path, **kwargs):
        fitted.append(dict(reads))
        raise SystemExit(0)

    monkeypatch.setattr("liif_sr.training.interrupt.fit_or_interrupt", fit)
    jobs = ["-m", "model.optimizer.lr=1e-4,5e-4"] if sweep else []
    code, err = _main(monkeypatch, capsys, tmp_path, *jobs, f"init_weights={weights}")
    assert fitted and fitted[0] == {"w.safetensors": 1}, (fitted, err)
