"""Resumes that would silently mix or rewrite runs are refused in one line before anything is written
(issue #17 point 2, issue #18 class 3): ``-m ... resume=S/1``, interpolated or swept ``resume``, an Optuna
sweep, folders that do not hold the recorded jobs, changed training values, limits below what was trained,
a second process on the same run, a damaged checkpoint. No training here: fake run and sweep folders."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from test_preflight import _compose, _main, _snapshot

from liif_sr.training import integrity
from liif_sr.training.checkpoint_io import AtomicCheckpointIO
from liif_sr.training.preflight import requested_net_config

RUN_OVERRIDES = ["data.batch_size=8", "data.val_scales=[2,3]", "trainer.max_epochs=8", "logger=[csv,wandb]"]


def _ckpt(path: Path, epochs: int, steps: int, lr: float = 1e-4) -> None:
    """A checkpoint of the quickstart model that has trained ``epochs`` epochs (``steps`` steps)."""
    config = requested_net_config(_compose())
    AtomicCheckpointIO().save_checkpoint(
        {
            "liif_sr": {"model": config},
            "state_dict": {},
            "epoch": epochs - 1,
            "global_step": steps,
            "loops": {"fit_loop": {"epoch_progress": {"current": {"processed": epochs}}}},
            "lr": lr,
        },
        path,
    )


def _run(run: Path, overrides: list[str], epochs: int = 8, steps: int = 80) -> Path:
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (run / ".hydra" / "config.yaml").write_text("# the run's config\n")
    (run / "train.log").write_text("old log\n")
    (run / "csv").mkdir()
    (run / "csv" / "metrics.csv").write_text("step,train/loss\n0,1.0\n")
    _ckpt(run / "checkpoints" / "last.ckpt", epochs, steps)
    return run


def _sweep(root: Path, sweeper: str = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper") -> Path:
    """A multirun folder of ``model.optimizer.lr=1e-4,5e-4`` with both jobs at epoch 2 of 8."""
    common = ["trainer.max_epochs=8"]
    record = {
        "hydra": {
            "overrides": {
                "hydra": [f"hydra.sweep.dir={root}", "hydra.mode=MULTIRUN"],
                "task": ["model.optimizer.lr=1e-4,5e-4", *common],
            },
            "sweeper": {"_target_": sweeper},
        }
    }
    root.mkdir(parents=True)
    (root / "multirun.yaml").write_text(yaml.safe_dump(record))
    for n, lr in enumerate(["0.0001", "0.0005"]):
        _run(root / str(n), [f"model.optimizer.lr={lr}", *common], epochs=2, steps=20)
    return root


@pytest.fixture
def refuse(monkeypatch, capsys, tmp_path):
    """Run ``liif-sr-train`` in-process; assert exit 2, one line, and that ``tmp_path`` did not change."""

    def check(*args: str, expect: str, code: int = 2) -> str:
        before = _snapshot(tmp_path)
        got, err = _main(monkeypatch, capsys, tmp_path, *args)
        assert got == code, err
        assert len(err.splitlines()) == 1, err
        assert expect in err, err
        assert _snapshot(tmp_path) == before  # no byte, no mtime changed; no logs/ folder
        return err

    return check


# ------------------------------------------------------------------------------- sweep combinations


def test_multirun_with_one_jobs_folder_is_refused(tmp_path, refuse):
    """The documented-then-broken recipe: job 1's checkpoint would be restored into every job."""
    sweep = _sweep(tmp_path / "S")
    refuse(
        "-m",
        "model.optimizer.lr=1e-4,5e-4",
        f"hydra.sweep.dir={sweep}",
        f"resume={sweep}/1",
        expect="every job of the sweep would continue that one run's checkpoint",
    )
    refuse("-m", f"resume={sweep}/0", expect=f"resume={sweep}/0 (no -m)")


@pytest.mark.parametrize(
    "value", ["${hydra:runtime.output_dir}", "${hydra:sweep.dir}/${hydra:job.num}", "${paths.log_dir}/x"]
)
def test_interpolated_resume_is_refused(tmp_path, refuse, value):
    refuse(f"resume='{value}'", expect="an interpolation cannot name a previous run")
    refuse("-m", "model.optimizer.lr=1e-4,5e-4", f"resume='{value}'", expect="an interpolation")


def test_swept_resume_is_refused(tmp_path, refuse):
    sweep = _sweep(tmp_path / "S")
    refuse("-m", f"resume={sweep}/0,{sweep}/1", expect="resume cannot be swept")


def test_optuna_sweep_is_not_resumed_as_a_grid(tmp_path, refuse):
    sweep = _sweep(tmp_path / "S", sweeper="hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper")
    refuse(f"resume={sweep}", expect="OptunaSweeper")


@pytest.mark.parametrize("change", ["model.optimizer.lr=1e-3,1e-2", "hparams_search=lr_optuna"])
def test_a_resumed_sweep_keeps_its_jobs(tmp_path, refuse, change):
    sweep = _sweep(tmp_path / "S")
    refuse(f"resume={sweep}", change, expect="a resumed sweep keeps its recorded jobs")


def test_job_folders_that_hold_other_jobs_are_refused(tmp_path, refuse):
    sweep = _sweep(tmp_path / "S")
    (sweep / "0").rename(sweep / "x")
    (sweep / "1").rename(sweep / "0")  # job 0's folder now holds the lr=5e-4 run
    (sweep / "x").rename(sweep / "1")
    refuse(f"resume={sweep}", expect="ran model.optimizer.lr=0.0005 but job 0 of the sweep is")


def test_a_folder_beyond_the_recorded_jobs_is_refused(tmp_path, refuse):
    sweep = _sweep(tmp_path / "S")
    _run(sweep / "5", ["model.optimizer.lr=0.01"])
    refuse(f"resume={sweep}", expect="S/5 is not one of the 2 jobs recorded in multirun.yaml")


@pytest.mark.parametrize(
    "change", ["data.batch_size=4", "data.sample_q=5000", "data.val_scales=[2]", "seed=7"]
)
def test_a_sweep_resume_with_changed_training_values_is_refused(tmp_path, refuse, change):
    sweep = _sweep(tmp_path / "S")
    refuse(f"resume={sweep}", change, expect="would continue the checkpoint with other training values")


def test_a_sweep_resume_with_lower_limits_is_refused(tmp_path, refuse):
    sweep = _sweep(tmp_path / "S")
    refuse(f"resume={sweep}", "trainer.max_epochs=1", expect="trainer.max_epochs=1 is below the 2 epochs")


def test_a_finished_sweep_is_left_alone(tmp_path, refuse):
    sweep = _sweep(tmp_path / "S")
    err = refuse(f"resume={sweep}", "trainer.max_epochs=2", code=0, expect="all 2 jobs are finished")
    assert "error" not in err


# ------------------------------------------------------------------------------------------ one run


@pytest.mark.parametrize(
    ("change", "expect"),
    [
        ("trainer.max_epochs=3", "trainer.max_epochs=3 is below the 8 epochs the run has trained"),
        ("trainer.max_steps=10", "trainer.max_steps=10 is below the 80 steps"),
        ("data.sample_q=5000", "data.sample_q=5000 (the run has"),
        ("data.batch_size=16", "data.batch_size=16 (the run has 8)"),
        ("data.val_scales=[4]", "data.val_scales=[4] (the run has [2, 3])"),
        ("data.inp_size=40", "data.inp_size=40"),
        ("model.optimizer.lr=1", "model.optimizer.lr=1"),
        ("+trainer.accumulate_grad_batches=4", "trainer.accumulate_grad_batches=4"),
        ("data=folder", "would continue the checkpoint with other training values"),
    ],
)
def test_a_failing_or_invalidating_resume_writes_nothing(tmp_path, refuse, change, expect):
    run = _run(tmp_path / "R", RUN_OVERRIDES)
    refuse(f"resume={run}", change, expect=expect)


def test_a_resume_with_nothing_left_writes_nothing(tmp_path, refuse):
    run = _run(tmp_path / "R", RUN_OVERRIDES)
    refuse(
        f"resume={run}", code=0, expect="finished: 8 of trainer.max_epochs=8 epochs trained; nothing to do"
    )
    refuse(f"resume={run}", "trainer.max_epochs=8", code=0, expect="nothing to do")


def test_a_resume_with_nothing_left_removes_a_killed_writers_temp_files(tmp_path, monkeypatch, capsys):
    """A job SIGKILLed while writing its last checkpoint's sidecar, after its last epoch, leaves a temp file;
    the resume that finds nothing left to train (so saves nothing) removes it, and only such files."""
    run = _run(tmp_path / "R", RUN_OVERRIDES)
    ckpts = run / "checkpoints"
    stale = [
        ckpts / ".last.ckpt.sha256.27564.tmp",
        ckpts / ".last.ckpt.31337.tmp",
        ckpts / ".epoch_0007.ckpt.8.tmp",
    ]
    for path in stale:
        path.write_bytes(b"")
    kept = [ckpts / ".notes.tmp", ckpts / "user.tmp"]  # not written by our atomic writers
    for path in kept:
        path.write_text("mine")
    got, err = _main(monkeypatch, capsys, tmp_path, f"resume={run}")
    assert got == 0 and "nothing to do" in err, err
    assert not any(p.exists() for p in stale)
    assert all(p.read_text() == "mine" for p in kept) and (ckpts / "last.ckpt").is_file()


HOLDER = """
import sys
from liif_sr.training import run_lock
print("ready", flush=True)
for line in sys.stdin:
    verb, folder = line.rstrip("\\n").split(" ", 1)
    if verb == "hold":
        assert run_lock.hold(folder, "t"), folder  # taken now, by this process
    else:
        run_lock.release(folder)
    print(verb, folder, flush=True)
"""


@pytest.fixture(scope="module")
def lock_holder():
    """Another process that takes and releases run locks with ``run_lock`` on request (as a running
    ``liif-sr-train`` does); one for the module: its start-up (Lightning's import) is paid once."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout.readline().strip() == "ready"
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def held_elsewhere(lock_holder):
    """``held_elsewhere(folder)``: a block during which the other process holds the run lock of ``folder``."""

    def ask(verb: str, folder: Path) -> None:
        lock_holder.stdin.write(f"{verb} {folder}\n")
        lock_holder.stdin.flush()
        assert lock_holder.stdout.readline().rstrip("\n") == f"{verb} {folder}", lock_holder.poll()

    @contextlib.contextmanager
    def held(folder: Path):
        ask("hold", folder)
        try:
            yield
        finally:
            ask("release", folder)

    return held


def test_a_second_process_on_the_same_run_is_refused(tmp_path, refuse, held_elsewhere):
    run = _run(tmp_path / "R", RUN_OVERRIDES)
    with held_elsewhere(run):
        refuse(
            f"resume={run}",
            "trainer.max_epochs=9",
            expect=f"another liif-sr-train process is training in {run}",
        )
    sweep = _sweep(tmp_path / "S")
    with held_elsewhere(sweep):  # the whole sweep is being resumed: neither it again nor one of its jobs
        refuse(f"resume={sweep}", "trainer.max_epochs=9", expect=f"is training in {sweep}")
        refuse(f"resume={sweep}/1", "trainer.max_epochs=9", expect=f"is training in {sweep}")
    with held_elsewhere(sweep / "1"):  # one job is being resumed alone: not the whole sweep
        refuse(f"resume={sweep}", "trainer.max_epochs=9", expect=f"is training in {sweep}/1")


def test_a_damaged_last_ckpt_is_refused_with_the_newest_intact_one(tmp_path, refuse):
    run = _run(tmp_path / "R", RUN_OVERRIDES, epochs=8)
    _ckpt(run / "checkpoints" / "epoch_0003.ckpt", 4, 40)
    os.utime(run / "checkpoints" / "epoch_0003.ckpt", (1, 1))  # older than last.ckpt
    last = run / "checkpoints" / "last.ckpt"
    data = bytearray(last.read_bytes())
    for i in range(200, 300):  # 100 flipped bytes
        data[i] ^= 0xFF
    last.write_bytes(bytes(data))
    err = refuse(f"resume={run}", "trainer.max_epochs=9", expect=f"{last} is damaged")
    assert f"the newest intact checkpoint is {run}/checkpoints/epoch_0003.ckpt" in err
    refuse(f"ckpt_path={last}", expect="is damaged")


def test_sidecar_survives_a_kill_between_sidecar_and_rename(tmp_path):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"a": torch.ones(2)}, path)
    old = integrity.digest(path)
    assert integrity.recorded(path) == {old} and integrity.is_intact(path)
    # the state a kill leaves after the new sidecar and before the rename: both digests accepted
    integrity.write_sidecar(path, ["0" * 64, old])
    assert integrity.is_intact(path)
    io.save_checkpoint({"a": torch.zeros(2)}, path)
    assert integrity.recorded(path) == {integrity.digest(path)}
    io.remove_checkpoint(path)
    assert not integrity.sidecar(path).exists()
    ok = subprocess.run(["sha256sum", "--version"], capture_output=True).returncode == 0
    if ok:  # the sidecar is in sha256sum's format
        io.save_checkpoint({"a": torch.ones(2)}, path)
        assert subprocess.run(["sha256sum", "-c", path.name + ".sha256"], cwd=tmp_path).returncode == 0


def test_only_rank_zero_locks(tmp_path, monkeypatch, held_elsewhere):
    """The other ranks of a DDP run (re-launched with the same command line) share rank 0's folder."""
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    from liif_sr.training import run_lock

    run = _run(tmp_path / "R", RUN_OVERRIDES)
    with held_elsewhere(run):
        monkeypatch.setattr(rank_zero_only, "rank", 1)
        assert run_lock.hold(run, "x") is False
        monkeypatch.setattr(rank_zero_only, "rank", 0)
        with pytest.raises(run_lock.RunLockedError):
            run_lock.hold(run, "x")


def test_a_damaged_checkpoint_without_sidecar_gets_no_model_advice(tmp_path, refuse):
    """Checkpoints written before sidecars: torch's own failure, said in full, without the advice meant
    for another model's checkpoint (``pass the model options ...``) or torch's ``weights_only=False``."""
    run = _run(tmp_path / "R", RUN_OVERRIDES, epochs=8)
    last = run / "checkpoints" / "last.ckpt"
    integrity.sidecar(last).unlink()
    data = bytearray(last.read_bytes())
    start = data.index(b"data.pkl") + 40  # inside the pickled structure
    for i in range(start, start + 100):
        data[i] ^= 0xFF
    last.write_bytes(bytes(data))
    err = refuse(f"resume={run}", "trainer.max_epochs=9", expect="not a readable checkpoint")
    assert "pass the model options" not in err and "weights_only" not in err


def test_an_optuna_sweep_folder_without_multirun_yaml_is_refused(tmp_path, refuse):
    sweep = _sweep(tmp_path / "S")
    (sweep / "multirun.yaml").unlink()  # the Optuna sweeper writes none
    refuse(f"resume={sweep}", expect="no multirun.yaml in that multirun folder (an Optuna sweep?)")


@pytest.mark.parametrize("sweep", ["hparams_search=lr_optuna", "hydra.mode=MULTIRUN", "hydra/sweeper=optuna"])
def test_a_sweep_from_the_config_with_one_run_is_refused(tmp_path, refuse, sweep):
    run = _run(tmp_path / "R", RUN_OVERRIDES, epochs=2, steps=20)
    refuse(f"resume={run}", sweep, expect="every job of the sweep would continue that one run's checkpoint")


def test_one_trial_of_an_optuna_sweep_resumes_as_one_run(tmp_path):
    from liif_sr.training import run_lock
    from liif_sr.training.resume_plan import plan

    trial = _run(
        tmp_path / "O" / "1",
        ["model.optimizer.lr=0.00061", "hparams_search=lr_optuna", *RUN_OVERRIDES[:2]],
        epochs=2,
        steps=20,
    )
    try:
        argv = plan([f"resume={trial}", "trainer.max_epochs=9"])
    finally:
        run_lock.release_all()
    assert argv == [
        "model.optimizer.lr=0.00061",
        *RUN_OVERRIDES[:2],
        "trainer.max_epochs=9",
        f"resume={trial}",
        "hydra.mode=RUN",
    ]


def test_nothing_left_reads_every_limit():
    from omegaconf import OmegaConf

    from liif_sr.errors import UserError
    from liif_sr.training.resume import Progress, nothing_left

    done = Progress(epochs=3, steps=30, seconds=800.0)
    limits = {"max_epochs": 10, "max_steps": -1, "max_time": None}
    assert nothing_left(OmegaConf.create(limits), done, "r") is None
    assert "3 of trainer.max_epochs=3" in nothing_left(
        OmegaConf.create({**limits, "max_epochs": 3}), done, "r"
    )
    assert "trainer.max_steps=30" in nothing_left(OmegaConf.create({**limits, "max_steps": 30}), done, "r")
    quick = {
        **limits,
        "max_time": "00:00:13:00",
    }  # the quickstart's budget, used up (Lightning's Timer state)
    assert "max_time" in nothing_left(OmegaConf.create(quick), done, "r")
    assert nothing_left(OmegaConf.create({**limits, "max_time": {"minutes": 14}}), done, "r") is None
    assert nothing_left(OmegaConf.create({**limits, "max_epochs": -1}), done, "r") is None
    with pytest.raises(UserError, match="trainer.max_epochs=2 is below the 3 epochs"):
        nothing_left(OmegaConf.create({**limits, "max_epochs": 2}), done, "r")


def test_one_checkpoint_into_every_job_of_a_sweep_is_refused(tmp_path, refuse, monkeypatch):
    run = _run(tmp_path / "R", RUN_OVERRIDES, epochs=2, steps=20)
    ckpt = run / "checkpoints" / "last.ckpt"
    refuse(
        "-m",
        "model.optimizer.lr=1e-4,5e-4",
        f"ckpt_path={ckpt}",
        expect="start each job from its weights with init_weights=",
    )
    refuse(
        "hparams_search=lr_optuna",
        f"ckpt_path={ckpt}",
        expect="every job of the sweep would continue that one",
    )
    from liif_sr.training.resume_plan import plan

    # one job under -m (e.g. a SLURM launch) or one checkpoint per job: allowed
    for argv in (["-m", f"ckpt_path={ckpt}"], ["-m", f"ckpt_path={ckpt},{ckpt}"]):
        assert plan(argv) == argv


def test_a_sweep_with_custom_job_folder_names_is_refused(tmp_path, refuse):
    sweep = _sweep(tmp_path / "S")
    record = yaml.safe_load((sweep / "multirun.yaml").read_text())
    record["hydra"]["sweep"] = {"dir": str(sweep), "subdir": "${hydra.job.override_dirname}"}
    (sweep / "multirun.yaml").write_text(yaml.safe_dump(record))
    refuse(f"resume={sweep}", expect="needs the default (the job number)")


@pytest.mark.parametrize(
    "change", ["data.sample_q=32", "data.batch_size=4", "model.optimizer.lr=1e-3", "seed=7"]
)
def test_the_python_api_refuses_the_same_changes(tmp_path, change):
    """``train(cfg)`` with ``resume=<run>`` of a ``liif-sr-train`` run (its ``.hydra/config.yaml``): the
    command line's refusals, before anything is written; what a resume may change passes."""
    from helpers import TINY_DATA, compose_in
    from omegaconf import OmegaConf

    from liif_sr.errors import UserError
    from liif_sr.train import train
    from liif_sr.training.resume_changes import refuse_api_changes

    run = tmp_path / "run"
    recorded = compose_in(run, *TINY_DATA)
    (run / ".hydra").mkdir()
    OmegaConf.save(
        OmegaConf.masked_copy(recorded, [k for k in recorded if k != "hydra"]), run / ".hydra/config.yaml"
    )
    before = sorted(p.name for p in run.rglob("*"))
    with pytest.raises(
        UserError, match=rf"resume={run}: {change.split('=')[0]}=.* \(the run has .*\) would continue"
    ):
        train(compose_in(run, *TINY_DATA, change, f"resume={run}"))
    assert sorted(p.name for p in run.rglob("*")) == before
    refuse_api_changes(
        compose_in(run, *TINY_DATA, "trainer.max_epochs=9", "data.num_workers=2", f"resume={run}")
    )
