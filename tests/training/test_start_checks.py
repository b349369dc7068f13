"""Start-up checks of ``liif-sr-train`` (issue #18, classes 2, 4 and 6): every refused start exits 2 with one
line and creates no ``logs/`` folder (also under ``-m``, where every combination is checked first); values that
would crash mid-run are refused at start; official LIIF/LTE ``.pth`` files can be fine-tuned."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from official_liif import OfficialEDSR, OfficialLIIF, official_checkpoint
from official_lte import OfficialLTE, official_head_checkpoint

from liif_sr.training.constraints import least_inp_size, smallest_hr_crop, suggest_inp_size


def _main(monkeypatch, capsys, tmp_path: Path, *args: str) -> tuple[int, str]:
    from liif_sr.train import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setattr(sys, "argv", ["liif-sr-train", *args, f"paths.log_dir={tmp_path}/logs"])
    with pytest.raises(SystemExit) as exc:
        main()
    return exc.value.code, capsys.readouterr().err.strip()


def _refused(monkeypatch, capsys, tmp_path: Path, *args: str) -> str:
    before = sorted(os.listdir(tmp_path))
    code, err = _main(monkeypatch, capsys, tmp_path, *args)
    assert code == 2, err
    assert err.startswith("liif-sr-train: error: ") and len(err.splitlines()) == 1, err
    assert sorted(os.listdir(tmp_path)) == before  # no logs/ folder, no run or multirun folder
    return err.removeprefix("liif-sr-train: error: ")


# ------------------------------------------------------------------ class 2 and 4: refused, nothing written

REFUSED = [
    # the examples (class 2)
    ("ckpt_path=last", "ckpt_path=last: no checkpoints/last.ckpt in this run directory"),
    ("data.train_sources=[/nonexistent]", "image source not found: /nonexistent"),
    ("trainer.precision=banana", "trainer: Precision 'banana' is invalid"),
    ("model.optimizer.lr=-1", "model.optimizer: Invalid learning rate: -1"),
    ("-m model/head=liif,bogus", "In 'model/liif': Could not find 'model/head/bogus' (available: liif, "),
    # other values of the class: what torch, Lightning and the data module refuse themselves
    ("+model.optimizer.betas=[1.5,0.9]", "model.optimizer: Invalid beta parameter at index 0"),
    ("+model.optimizer.weight_decay=-1", "model.optimizer: Invalid weight_decay value: -1"),
    ("model.scheduler.milestones=5", "model.scheduler.milestones=5: expected a list"),
    ("trainer.accelerator=bogus", "trainer: You selected an invalid accelerator name"),
    ("trainer.devices=0", "trainer: `Trainer(devices=0)` value is not a valid input"),
    ("trainer.max_time=soon", "trainer: `Timer(duration='soon')` is not a valid duration"),
    ("+trainer.strategy=bogus", "trainer: You selected an invalid strategy name"),
    ("data.sampler=gpu", "data.sampler must be 'cpu' or 'device'"),
    ("data.val_protocol=psnr", "data.val_protocol must be 'div2k' or 'benchmark'"),
    ("data.val_sources=[/nonexistent/val]", "image source not found: /nonexistent/val"),
    ("-m data.batch_size=4 data.train_sources=[skimage:coffee],[/nope]", "image source not found: /nope"),
    ("-m trainer.precision=32,banana", "trainer: Precision 'banana' is invalid"),
    (
        "-m trainer=ddp trainer.accelerator=cpu trainer.devices=2 seed=1,2",
        "trainer.strategy=ddp with several devices cannot run inside a local Hydra multirun",
    ),
    ("model/encoder=bogus", "Could not find 'model/encoder/bogus' (available: edsr_baseline"),
    # class 4: values that crashed mid-run
    ("data.sample_q=1300", "data.sample_q=1300 is more than the 1024 pixels of the smallest HR crop (32x32"),
    ("data.inp_size=16", "data.sample_q=1024 is more than the 256 pixels of the smallest HR crop"),
    ("data.scale_min=1.5 data.inp_size=20 data.sample_q=901", "more than the 900 pixels"),
    ("-m data.sample_q=1024,2000", "data.sample_q=2000 is more than the 1024 pixels"),
    (
        "data.inp_size=100000 data.sample_q=null",
        "10 of 10 training images are smaller than 100000 px on a side",
    ),
    ("data.inp_size=450", "training images are smaller than 450 px on a side"),
    ("model.head.out_dim=4", "model.head.out_dim=4: expected 3: training images are RGB"),
    ("model.head.out_dim=1", "model.head.out_dim=1: expected 3"),
    ("model.encoder.n_colors=1", "model.encoder.n_colors=1: expected 3"),
    ("trainer.max_epochs=-5", "trainer.max_epochs=-5: expected a positive integer, or -1 for no limit"),
    ("trainer.max_epochs=0", "trainer.max_epochs=0: expected a positive integer"),
    ("trainer.max_steps=-2", "trainer.max_steps=-2: expected a positive integer"),
    ("trainer.check_val_every_n_epoch=0", "trainer.check_val_every_n_epoch=0: expected a positive integer"),
    # trainer integers Lightning takes without a word (0 or -1 logging intervals, ...): refused at the entry
    ("trainer.log_every_n_steps=-1", "trainer.log_every_n_steps=-1: expected a positive integer"),
    ("trainer.log_every_n_steps=0", "trainer.log_every_n_steps=0: expected a positive integer"),
    ("trainer.log_every_n_steps=1.5", "trainer.log_every_n_steps=1.5: expected a positive integer"),
    ("-m trainer.log_every_n_steps=10,0", "trainer.log_every_n_steps=0: expected a positive integer"),
    ("+trainer.val_check_interval=0", "trainer.val_check_interval=0: expected a positive integer (training"),
    ("+trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches=0: expected a positive integer"),
    ("+trainer.num_sanity_val_steps=-2", "trainer.num_sanity_val_steps=-2: expected an integer >= 0, or -1"),
    # a callback's own arguments: built at the entry (no run folder yet)
    (
        "+callbacks.model_checkpoint.every_n_train_steps=2",
        "callbacks.model_checkpoint: Combination of parameters every_n_train_steps=2, every_n_epochs=11",
    ),
    ("callbacks.lr_monitor.logging_interval=hour", "callbacks.lr_monitor: logging_interval should be `step`"),
    ("callbacks.requeue.signals=[SIGNOPE]", "callbacks.requeue: signals: no signal 'SIGNOPE'"),
    ("-m +callbacks.model_checkpoint.every_n_train_steps=null,2", "callbacks.model_checkpoint: Combination"),
    ("logger=none", "callbacks.lr_monitor needs a logger (Lightning refuses it without one)"),
    ("model.scheduler_interval=hour", "model.scheduler_interval='hour': expected epoch or step"),
    ("model.head.hidden_dim=64", "Could not override 'model.head.hidden_dim'."),
    ("model/head=lte model.head.feat_unfold=false", "Could not override 'model.head.feat_unfold'."),
    ("+model.head.hidden_dim=64", "LIIFHead.__init__() got an unexpected keyword argument 'hidden_dim'"),
]


@pytest.mark.parametrize(("overrides", "message"), REFUSED)
def test_refused_starts_write_nothing(tmp_path, monkeypatch, capsys, overrides, message):
    assert message in _refused(monkeypatch, capsys, tmp_path, *overrides.split())


@pytest.mark.parametrize(
    ("key", "refused", "accepted"),
    [
        ("log_every_n_steps", [0, -1, -50, 1.5, 0.5, "often", True, None], [1, 50]),
        ("val_check_interval", [0, -1, 0.0, -0.5, 1.5, "half", True], [1, 200, 0.25, 1.0, None]),
        ("accumulate_grad_batches", [0, -1, 2.5, None], [1, 4]),
        ("num_sanity_val_steps", [-2, -10, 1.5, None], [-1, 0, 2]),
        ("min_epochs", [-1, 1.5], [0, 3, None]),
        ("min_steps", [-1, -2], [0, 100, None]),
        ("gradient_clip_val", [-1, -0.5, float("inf"), "x"], [0, 0.5, 1, None]),
        ("max_steps", [-2, 0, 1.5], [-1, 1, None]),
        ("check_val_every_n_epoch", [0, -1, 0.5], [1, 5, None]),
    ],
)
def test_absurd_trainer_integers_are_refused_once_at_the_entry(key, refused, accepted):
    """Each value of the class is one line naming the key (``check_config``: the entry's one check)."""
    from omegaconf import open_dict
    from test_preflight import _compose

    from liif_sr.training.constraints import ConfigValueError
    from liif_sr.training.preflight import check_config

    cfg = _compose()
    for value in refused:
        with open_dict(cfg):
            cfg.trainer[key] = value
        with pytest.raises(ConfigValueError, match=f"^trainer.{key}=") as exc:
            check_config(cfg)
        assert "\n" not in str(exc.value)
    for value in accepted:
        with open_dict(cfg):
            cfg.trainer[key] = value
        check_config(cfg)


def test_paper_experiment_without_its_dataset(tmp_path, monkeypatch, capsys):
    err = _refused(
        monkeypatch, capsys, tmp_path, "experiment=edsr_baseline_liif", f"paths.data_dir={tmp_path}/d"
    )
    assert (
        err
        == f"DIV2K not found at {tmp_path}/d/div2k/DIV2K_train_HR: run `liif-sr download div2k --root {tmp_path}/d`"
    )


def test_empty_source_folder(tmp_path, monkeypatch, capsys):
    (tmp_path / "empty").mkdir()
    err = _refused(monkeypatch, capsys, tmp_path, f"data.train_sources=[{tmp_path}/empty]")
    assert "no images found" in err


@pytest.mark.parametrize(
    "source",
    ["/nonexistent.pth", "etc_passwd", "official_other"],
)
def test_refused_init_weights_write_nothing(tmp_path, monkeypatch, capsys, source):
    if source == "etc_passwd":
        path = tmp_path / "notes.txt"
        path.write_text("not weights\n")
        source, message = str(path), "not a checkpoint (a text file)"
    elif source == "official_other":
        path = _official_file(tmp_path, "lte")
        source, message = str(path), "checkpoint has encoder.args.n_resblocks=2, expected 4"
    else:
        message = "checkpoint file not found"
    err = _refused(monkeypatch, capsys, tmp_path, f"init_weights={source}")
    assert err.startswith(f"init_weights={source}: ") and message in err, err


def test_ckpt_path_last_in_a_given_run_folder_with_a_checkpoint_passes(tmp_path):
    from test_preflight import _fake_run

    from liif_sr.training.preflight import preflight_argv

    run = _fake_run(tmp_path / "run")
    preflight_argv("train", ["ckpt_path=last", f"hydra.run.dir={run}"])  # no error: Hydra may start


# ------------------------------------------------------------------ class 4: bounds that hold exactly


@pytest.mark.parametrize(("inp_size", "scale_min"), [(32, 1.0), (48, 1.0), (20, 1.5), (17, 2.3)])
def test_sample_q_bound_is_the_smallest_crop_exactly(inp_size, scale_min):
    from liif_sr.data.sampling import random_scale_sample

    img = torch.randint(0, 256, (3, 200, 200), dtype=torch.uint8)
    side = smallest_hr_crop(inp_size, scale_min)
    kwargs = {"inp_size": inp_size, "scale_min": scale_min, "scale_max": scale_min}
    assert random_scale_sample(img, sample_q=side * side, **kwargs)["gt"].shape[0] == side * side
    with pytest.raises(ValueError, match="HR pixels"):
        random_scale_sample(img, sample_q=side * side + 1, **kwargs)


def test_small_images_are_refused_for_the_crop_they_cannot_hold(tmp_path):
    """An image between inp_size and sqrt(sample_q) on a side: the crop is capped at the image side."""
    from liif_sr.data.sampling import min_image_side, random_scale_sample
    from liif_sr.data.source_check import check_data_sources
    from liif_sr.errors import UserError

    assert (
        min_image_side(32, 1024) == 32 and min_image_side(32, 1025) == 33 and min_image_side(32, None) == 32
    )
    img = torch.randint(0, 256, (3, 40, 40), dtype=torch.uint8)
    with pytest.raises(ValueError, match="HR pixels"):  # what the start check prevents
        random_scale_sample(img, inp_size=32, scale_min=1.5, scale_max=1.5, sample_q=1700)
    from PIL import Image

    Image.fromarray(img.permute(1, 2, 0).numpy()).save(tmp_path / "small.png")
    data = {"train_sources": [str(tmp_path)], "inp_size": 32, "sample_q": 1700, "skip_bad_files": False}
    with pytest.raises(
        UserError, match=r"1 of 1 training images are smaller than 42 px .* data.sample_q=1700"
    ):
        check_data_sources(data)
    check_data_sources({**data, "sample_q": 1600})


@pytest.mark.parametrize("multiple", [8, 16])
def test_inp_size_suggestions_meet_every_constraint(multiple):
    for sample_q in (None, 256, 1024, 1100, 2304):
        for scale_min in (1.0, 1.3):
            for inp in range(1, 80):
                if sample_q and smallest_hr_crop(inp, scale_min) ** 2 < sample_q:
                    continue  # refused first, by the sample_q bound (whose message names least_inp_size)
                good = suggest_inp_size(inp, multiple, scale_min, sample_q)
                assert good % multiple == 0 and good >= multiple
                assert not sample_q or smallest_hr_crop(good, scale_min) ** 2 >= sample_q
                assert abs(good - inp) < multiple + least_inp_size(sample_q or 1, scale_min, multiple)


def test_swinir_suggestion_then_passes(tmp_path, monkeypatch, capsys):
    """The issue: the SwinIR message suggested data.inp_size=24 with sample_q=1024, which crashed."""
    from test_preflight import _compose

    from liif_sr.training.preflight import check_config, requested_net_config

    for sample_q, want in ((1024, 32), (1100, 40)):
        args = ("model/encoder=swinir_small", "data.inp_size=36", f"data.sample_q={sample_q}")
        err = _refused(monkeypatch, capsys, tmp_path, *args)
        assert err.endswith(f"(e.g. data.inp_size={want})"), err
        cfg = _compose("model/encoder=swinir_small", f"data.inp_size={want}", f"data.sample_q={sample_q}")
        check_config(cfg)
        requested_net_config(cfg)


# ------------------------------------------------------------------ class 6: fine-tuning official weights


def _official_file(tmp_path: Path, head: str) -> Path:
    """An official-format .pth (LIIF or LTE repository layout) of a small EDSR-baseline model: the encoder
    args name only n_resblocks/n_feats (no res_scale, as the official configs)."""
    torch.manual_seed(0)
    encoder = OfficialEDSR(n_resblocks=2, n_feats=16)
    enc_args = {"n_resblocks": 2, "n_feats": 16}
    if head == "liif":
        ckpt = official_checkpoint(
            OfficialLIIF(encoder, hidden_list=[32, 32]), "edsr-baseline", enc_args, [32, 32], {}
        )
    else:
        model = OfficialLTE(encoder, hidden_list=[32, 32], hidden_dim=32)
        ckpt = official_head_checkpoint(model, "lte", "edsr-baseline", enc_args)
    assert "res_scale" not in ckpt["model"]["args"]["encoder_spec"]["args"]
    path = tmp_path / f"official_{head}.pth"
    torch.save(ckpt, path)
    return path


@pytest.mark.parametrize("head", ["liif", "lte"])
def test_official_weights_fine_tune(tmp_path, compose_train, head):
    from test_train import TINY

    from liif_sr.checkpoints import read_checkpoint
    from liif_sr.train import train
    from liif_sr.training.preflight import check_start

    path = _official_file(tmp_path, head)
    head_args = ["model.head.hidden_list=[32,32]"] + (["model.head.hidden_dim=32"] if head == "lte" else [])
    mine = ("model.encoder.", "model.head.")
    overrides = [
        *(o for o in TINY if not o.startswith(mine)),
        "model/encoder=edsr_baseline",
        f"model/head={head}",
        "model.encoder.n_resblocks=2",
        "model.encoder.n_feats=16",
        *head_args,
        f"init_weights={path}",
        "model.optimizer.lr=1e-9",  # two steps that barely move the weights: the loaded ones must remain
        "trainer.max_steps=2",
        "trainer.max_epochs=2",  # 1 step per epoch (2 images, batch 2)
        "data.val_sources=[]",
    ]
    cfg = compose_train(*overrides)
    check_start(cfg)  # the preflight of liif-sr-train accepts it
    _, objects = train(cfg)
    assert objects["trainer"].global_step == 2
    _, official = read_checkpoint(path)
    trained = objects["model"].net.state_dict()
    assert set(trained) == set(official)
    for key, value in official.items():
        torch.testing.assert_close(trained[key], value, rtol=0, atol=1e-6, msg=key)


# ------------------------------------------------------------------ class 8: Ctrl-C says how to resume


class CtrlCAt:
    """A callback that sends this process SIGINT (as Ctrl-C does) after training step ``step``."""

    def __new__(cls, step: int):
        import signal

        import lightning as L

        class _CtrlC(L.Callback):
            def on_train_batch_end(self, trainer, *args) -> None:
                if trainer.global_step == step:
                    os.kill(os.getpid(), signal.SIGINT)

        return _CtrlC()


def test_ctrl_c_saves_last_ckpt_and_prints_the_resume_command(tmp_path, monkeypatch, capsys):
    import shlex

    from test_train import TINY

    args = [
        *(o for o in TINY if not o.startswith(("callbacks.", "data.repeat="))),
        "data.repeat=4",  # 4 steps per epoch: the interrupt is mid-epoch
        "data.val_sources=[]",
        "trainer.max_epochs=50",
        "callbacks.progress_bar=null",
        "+callbacks.ctrl_c._target_=test_start_checks.CtrlCAt",
        "+callbacks.ctrl_c.step=3",
    ]
    code, err = _main(monkeypatch, capsys, tmp_path, *args)
    assert code == 130, err
    line = err.splitlines()[-1]
    assert line.startswith(
        "liif-sr-train: error: interrupted at epoch 0, step 3 (checkpoints/last.ckpt saved)"
    )
    command = shlex.split(line.split("; continue with: ", 1)[1])
    assert command[0] == "liif-sr-train" and command[-1].startswith("resume=")
    assert f"paths.log_dir={tmp_path}/logs" in command and "+callbacks.ctrl_c.step=3" in command
    run = Path(command[-1].removeprefix("resume="))
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 3
    # the printed command continues the run (a new process, as the user would). A resume reads the run's own
    # overrides back, so the test's Ctrl-C callback comes along: importable from tests/, it fires at step 3 only
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "liif_sr.train", *command[1:], "trainer.max_steps=5"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},  # the run's config names CtrlCAt here
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert os.listdir(run.parent) == [run.name]  # continued in place
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 5
