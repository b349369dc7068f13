"""``liif-sr-eval``: paper-grade evaluation tables (benchmark pairs, metrics, reports, CLI)."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
import weakref
from pathlib import Path

import pytest
import torch

from liif_sr.errors import DatasetMissingError, UserError
from liif_sr.evaluation.benchmarks import BenchmarkSpec, iter_pairs, lr_source, normalize_scale
from liif_sr.evaluation.eval_logging import log_results
from liif_sr.evaluation.report import BICUBIC, Column, EvalResults, format_markdown

# published bicubic rows (EDSR/RCAN tables; LIIF's reference), Y PSNR with shave = scale
PUBLISHED_BICUBIC = {
    ("Set5", 2): 33.66, ("Set5", 3): 30.39, ("Set5", 4): 28.42,
    ("Set14", 2): 30.24, ("Set14", 3): 27.55, ("Set14", 4): 26.00,
    ("B100", 2): 29.56, ("B100", 3): 27.21, ("B100", 4): 25.96,
    ("Urban100", 4): 23.14,
}  # fmt: skip
TINY_MODEL = {
    "encoder": {"name": "edsr_baseline", "args": {"n_resblocks": 1, "n_feats": 4}},
    "head": {"hidden_list": [8], "local_ensemble": False},  # ~7x cheaper queries than the paper's head
}


@pytest.fixture
def run_eval(tmp_path):
    """Compose ``eval.yaml`` with overrides (outputs in ``tmp_path/run``) and run it in-process."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from liif_sr.evaluate import evaluate

    def _run(*overrides: str, out: str = "run"):
        GlobalHydra.instance().clear()
        with initialize_config_module("liif_sr.conf", version_base="1.3"):
            cfg = compose(
                "eval",
                overrides=[
                    "progress=false",
                    f"paths.log_dir={tmp_path}/logs",
                    f"hydra.run.dir={tmp_path}/{out}",
                    *overrides,
                ],
                return_hydra_config=True,
            )
        HydraConfig().set_config(cfg)
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path / out)
        return evaluate(cfg), tmp_path / out

    yield _run
    GlobalHydra.instance().clear()


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    from liif_sr.checkpoints import save_weights
    from liif_sr.models.build import build_model

    torch.manual_seed(0)
    return save_weights(build_model(TINY_MODEL), tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


@pytest.fixture
def mini_set(shared_data, tmp_path) -> Path:
    """A 3-image set of small real photos (``fixtures``) in the EDSR layout, without LR files."""
    hr = tmp_path / "bench" / "Mini" / "HR"
    hr.mkdir(parents=True)
    for name in ("astronaut_96x96.png", "chelsea_64x64.png", "coffee_127x95.png"):
        shutil.copy(shared_data / "fixtures" / name, hr / name)
    return hr.parent


def _mini(mini_set: Path) -> list[str]:
    return ["benchmark=[set14]", f"benchmark.set14.root={mini_set}", "benchmark.set14.name=Mini"]


# ---------------------------------------------------------------------------------------------------------
# end to end on real data
# ---------------------------------------------------------------------------------------------------------
def test_set5_bicubic_and_model_one_prediction_at_a_time(run_eval, shared_data, tiny_checkpoint, monkeypatch):
    """Set5 x2/x3/x4: reports written, bicubic = published row, and never two predictions alive at once."""
    import liif_sr.evaluation.runner as ev
    from liif_sr.models.implicit_sr import ImplicitSR

    live: list[weakref.ref] = []
    calls = {"model": 0, "bicubic": 0}

    def tracked(kind, fn):
        def wrapper(*args, **kwargs):
            alive = [r for r in live if r() is not None]
            assert not alive, f"{len(alive)} earlier prediction(s) still alive when a new one is made"
            out = fn(*args, **kwargs)
            live.append(weakref.ref(out))
            calls[kind] += 1
            return out

        return wrapper

    monkeypatch.setattr(ImplicitSR, "render", tracked("model", ImplicitSR.render))  # eval: options ready
    monkeypatch.setattr(ev, "bicubic_predictor", tracked("bicubic", ev.bicubic_predictor))
    results, out = run_eval(
        "benchmark=[set5]",
        "scales=[2,3,4]",
        f"checkpoint={tiny_checkpoint}",
        f"paths.benchmark_dir={shared_data / 'benchmark'}",
    )
    assert calls == {"model": 15, "bicubic": 15}
    assert not [r for r in live if r() is not None]
    for name in ("results.md", "results.csv", "results.json", "psnr_vs_scale.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert results.models == [BICUBIC, "tiny"]
    assert [c.lr for c in results.columns] == ["given"] * 3
    for s in (2, 3, 4):
        assert results.mean(BICUBIC, "Set5", s) == pytest.approx(PUBLISHED_BICUBIC[("Set5", s)], abs=0.05)
        assert math.isfinite(results.mean("tiny", "Set5", s))
    doc = json.loads((out / "results.json").read_text())
    assert len(doc["per_image"]) == 2 * 3 * 5
    assert {r["image"] for r in doc["per_image"]} == {"baby", "bird", "butterfly", "head", "woman"}
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 6 and {r["model"] for r in rows} == {BICUBIC, "tiny"}
    ssim = {int(r["scale"]): float(r["ssim"]) for r in rows if r["model"] == BICUBIC}
    assert ssim[2] > ssim[3] > ssim[4] > 0.75  # published bicubic SSIM: 0.9299 / 0.8682 / 0.8104
    md = (out / "results.md").read_text()
    assert "| Model | Set5 ×2 | Set5 ×3 | Set5 ×4 |" in md and "| tiny |" in md


def test_generated_lr_and_make_lr_files_agree(run_eval, mini_set, caplog):
    """Without LR files x4 is generated (warned); generate_with=matlab = the files `liif-sr make-lr` writes."""
    from liif_sr.data.make_lr import make_lr

    pil, _ = run_eval(*_mini(mini_set), "scales=[4,6]", "ssim=false", "plot=false", out="pil")
    assert [c.lr for c in pil.columns] == ["pil", "pil"]
    assert "no LR folder" in caplog.text and "liif-sr make-lr" in caplog.text
    generated, _ = run_eval(*_mini(mini_set), "scales=[4,6]", "generate_with=matlab", "ssim=false", out="gen")
    assert [c.lr for c in generated.columns] == ["matlab", "pil"]
    make_lr(mini_set / "HR", [4], mini_set / "LR_bicubic", progress=False)
    given, out = run_eval(*_mini(mini_set), "scales=[4,6]", "ssim=false", out="given")
    assert [c.lr for c in given.columns] == ["given", "pil"]
    assert [r["psnr"] for r in given.per_image] == [r["psnr"] for r in generated.per_image]
    assert [r["psnr"] for r in given.per_image][:3] != [r["psnr"] for r in pil.per_image][:3]
    md = (out / "results.md").read_text()
    assert "Mini ×4 |" in md and "Mini ×6* |" in md and "PIL bicubic" in md


def test_missing_sets_error_or_skip(run_eval, mini_set, tmp_path, caplog):
    with pytest.raises(DatasetMissingError, match=r"Set5: .*liif-sr download benchmark"):
        run_eval("benchmark=[set5]", f"paths.benchmark_dir={tmp_path}/benchmark")
    with pytest.raises(DatasetMissingError, match=r"liif-sr download div2k"):
        run_eval("benchmark=[div2k]", f"paths.div2k_dir={tmp_path}/div2k")
    with pytest.raises(DatasetMissingError, match="manga109.org"):
        run_eval("benchmark=[manga109]", f"paths.benchmark_dir={tmp_path}/benchmark")
    results, _ = run_eval(
        "benchmark=[set14,set5]", f"benchmark.set14.root={mini_set}", "benchmark.set14.name=Mini",
        f"paths.benchmark_dir={tmp_path}/none", "skip_missing=true", "scales=2", "ssim=false", "plot=false",
    )  # fmt: skip
    assert [c.set for c in results.columns] == ["Mini"]
    assert "skipping set5: Set5: SR benchmark not found" in caplog.text
    with pytest.raises(UserError, match="no benchmark set"):
        run_eval("benchmark=[set5]", f"paths.benchmark_dir={tmp_path}/none", "skip_missing=true")


def test_div2k_protocol(run_eval, shared_data, tmp_path):
    """DIV2K config: its own folder names, RGB PSNR with shave = scale + 6, generated LR above x4."""
    from liif_sr.evaluation.runner import bicubic_predictor
    from liif_sr.metrics.sr import psnr

    hr = tmp_path / "div2k" / "DIV2K_valid_HR"
    hr.mkdir(parents=True)
    shutil.copy(shared_data / "fixtures" / "astronaut_96x96.png", hr / "0801.png")
    results, _ = run_eval(
        "benchmark=[div2k]", f"paths.div2k_dir={tmp_path}/div2k", "scales=[2,12]", "generate_with=matlab",
        "plot=false",
    )  # fmt: skip
    assert [(c.set, c.scale, c.lr, c.protocol, c.shave) for c in results.columns] == [
        ("DIV2K", 2, "matlab", "div2k", 8), ("DIV2K", 12, "pil", "div2k", 18),
    ]  # fmt: skip
    spec = BenchmarkSpec("D", tmp_path / "div2k", hr_dir="DIV2K_valid_HR", protocol="div2k")
    pair = next(iter_pairs(spec, 2, generate_with="matlab"))
    lr, ref = pair.lr[None].float() / 255, pair.hr[None].float() / 255
    expected = psnr(bicubic_predictor(lr, (96, 96)), ref, shave=8, y_channel=False).item()
    assert results.per_image[0]["psnr"] == pytest.approx(expected, abs=1e-9)


def test_csv_logger_and_options(run_eval, mini_set, tiny_checkpoint):
    results, out = run_eval(
        *_mini(mini_set), "logger=csv", "bicubic=false", f"checkpoint={{a: {tiny_checkpoint}}}", "scales=[2.5]",
        "first_k=2", "plot=false", "cell_clip=4",
    )  # fmt: skip
    assert results.models == ["a"] and results.columns[0].scale == 2.5 and results.columns[0].shave == 3
    assert len(results.per_image) == 2
    assert "eval/Mini/x2.5/a/psnr" in (out / "csv" / "metrics.csv").read_text()
    with pytest.raises(UserError, match="nothing to evaluate"):
        run_eval(*_mini(mini_set), "bicubic=false", "checkpoint=bicubic")


def test_cli_subprocess(shared_data, tmp_path):
    exe = shutil.which("liif-sr-eval", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "liif_sr.evaluate"]
    env = {**os.environ, "LIIF_SR_DATA_DIR": str(shared_data)}
    args = ["benchmark=[set5]", "scales=[4]", "first_k=1", "ssim=false", "plot=false", "progress=false"]
    proc = subprocess.run(
        [*cmd, *args, f"hydra.run.dir={tmp_path}/run"], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "| bicubic |" in proc.stdout
    assert (tmp_path / "run" / "results.md").is_file() and (tmp_path / "run" / "eval.log").is_file()
    env["LIIF_SR_DATA_DIR"] = str(tmp_path / "nothing")
    proc = subprocess.run(
        [*cmd, *args, f"hydra.run.dir={tmp_path}/run2"], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("liif-sr-eval: error: Set5: ")
    assert "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------------------------------------
# units
# ---------------------------------------------------------------------------------------------------------
def test_checkpoint_names():
    from liif_sr.evaluation.runner import checkpoint_names

    assert checkpoint_names(None) == {}
    assert checkpoint_names("runs/a/model.ckpt") == {"model": "runs/a/model.ckpt"}
    assert checkpoint_names(["bicubic", "x/m.pth", "y/m.pth", "z/r.pth"]) == {
        "x/m": "x/m.pth", "y/m": "y/m.pth", "r": "z/r.pth",
    }  # fmt: skip
    assert checkpoint_names({"edsr": "a.pth"}) == {"edsr": "a.pth"}
    with pytest.raises(UserError):
        checkpoint_names({"bicubic": "a.pth"})


def test_scales_and_lr_source(tmp_path):
    assert normalize_scale("4") == 4 and isinstance(normalize_scale(4.0), int) and normalize_scale(2.5) == 2.5
    for bad in (1, 0, "x", float("inf")):
        with pytest.raises(UserError):
            normalize_scale(bad)
    spec = BenchmarkSpec("S", tmp_path)
    assert spec.scales == (2, 3, 4, 6, 8)
    assert lr_source(spec, 4) == "pil" and lr_source(spec, 4, generate_with="matlab") == "matlab"
    (tmp_path / "LR_bicubic" / "X4").mkdir(parents=True)
    (tmp_path / "LR_bicubic" / "X4" / "ax4.png").touch()
    assert lr_source(spec, 4, generate_with="matlab") == "given"
    assert lr_source(spec, 8, downsampler="matlab") == "matlab"  # x8 is a generated-LR scale
    with pytest.raises(UserError):
        lr_source(spec, 4, downsampler="nearest")
    with pytest.raises(UserError, match="protocol"):
        BenchmarkSpec("S", tmp_path, protocol="rgb")


def test_pairs_are_read_lazily_and_cropped(mini_set, monkeypatch):
    import liif_sr.evaluation.benchmarks as bm

    reads = []
    monkeypatch.setattr(bm, "read_image", lambda p, _r=bm.read_image: reads.append(p) or _r(p))
    spec = BenchmarkSpec("Mini", mini_set)
    pairs = iter_pairs(spec, 3, generate_with="matlab")
    assert reads == []
    first = next(pairs)
    assert len(reads) == 1
    assert (
        first.lr.dtype == torch.uint8 and first.hr.shape[-2:] == (96, 96) and first.lr.shape[-2:] == (32, 32)
    )
    coffee = list(pairs)[-1]  # 127x95 (W x H) → mod-crop to 126x93
    assert coffee.hr.shape[-2:] == (93, 126) and coffee.lr.shape[-2:] == (31, 42)
    (mini_set / "LR_bicubic" / "X3").mkdir(parents=True)
    (mini_set / "LR_bicubic" / "X3" / "otherx3.png").touch()  # an LR folder without astronaut's file
    with pytest.raises(UserError, match="no LR file astronaut_96x96x3"):
        next(iter_pairs(BenchmarkSpec("Mini", mini_set), 3))


def test_markdown_marks_and_bold():
    cols = [Column("Set5", 4, "given", "benchmark", 4, 1), Column("Set5", 8, "pil", "benchmark", 8, 1)]
    res = EvalResults(models=[BICUBIC, "liif"], columns=cols)
    for model, base in ((BICUBIC, 28.0), ("liif", 32.0)):
        for col in cols:
            res.add(model, col, "baby", base - col.scale / 4, 0.8)
    md = format_markdown(res)
    assert "| Model | Set5 ×4 | Set5 ×8* |" in md
    assert "| liif | **31.00** / 0.8000 | **30.00** / 0.8000 |" in md
    assert "| bicubic | 27.00 / 0.8000 | 26.00 / 0.8000 |" in md
    assert "* LR generated" in md


def test_log_results_wandb_like_logger(tmp_path):
    class FakeWandb:
        def __init__(self):
            self.calls = []

        def __getattr__(self, name):
            return lambda *a, **k: self.calls.append((name, a, k))

    col = Column("Set5", 4, "given", "benchmark", 4, 1)
    res = EvalResults(models=[BICUBIC], columns=[col])
    res.add(BICUBIC, col, "baby", 30.0, None)
    png = tmp_path / "p.png"
    png.touch()
    lg = FakeWandb()
    log_results(res, [lg], png)
    names = [c[0] for c in lg.calls]
    assert names[:3] == ["log_metrics", "log_table", "log_image"]
    assert lg.calls[0][1][0] == {"eval/Set5/x4/bicubic/psnr": 30.0}
    assert lg.calls[1][2]["data"] == [[BICUBIC, "Set5", 4, "given", "benchmark", 30.0, None, 1]]


# ---------------------------------------------------------------------------------------------------------
# the full bicubic table (slow)
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_full_bicubic_table_matches_published(run_eval, shared_data):
    bench = f"paths.benchmark_dir={shared_data / 'benchmark'}"
    results, _ = run_eval("benchmark=[set5,set14,b100]", "scales=[2,3,4]", "ssim=false", bench, out="a")
    urban, _ = run_eval(
        "benchmark=[urban100]", "scales=[4]", "generate_with=matlab", "ssim=false", bench, out="b"
    )
    assert urban.columns[0].lr == "matlab"
    for (name, s), value in PUBLISHED_BICUBIC.items():
        got = (urban if name == "Urban100" else results).mean(BICUBIC, name, s)
        tol = 0.15 if name == "Set14" else 0.05  # our Set14 LR files differ slightly from EDSR's
        assert got == pytest.approx(value, abs=tol), (name, s, got)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("first_k=0", r"first_k=0: expected a positive integer or null \(all images\)"),
        ("first_k=-2", r"first_k=-2: expected a positive integer"),
        ("chunk=0", r"chunk=0: expected a positive integer"),
        ("scales=[0]", r"scales: scale must be a finite number > 1, got 0"),
        ("scales=[-2]", r"scales: scale must be a finite number > 1, got -2"),
        ("scales=[]", r"scales=\[\]: list at least one scale"),
        ("border=reflect", r"border='reflect': expected none or replicate"),
        ("device=bogus", r"device must be auto, cpu, cuda\[:N\] or mps, got 'bogus'"),
        ("benchmark=[]", r"no benchmark set to evaluate"),
    ],
)
def test_bad_options_are_refused_not_reinterpreted(run_eval, option, message):
    """#14 class 2: ``first_k=0`` used to evaluate every image; each value is used as meant or refused."""
    with pytest.raises(UserError, match=message):
        run_eval("benchmark=[set5]", "scales=[2]", option)


# ---------------------------------------------------------------------------------------------------------
# a comparison: checkpoint=<multirun folder> → a row per job
# ---------------------------------------------------------------------------------------------------------
def _fake_multirun(root: Path) -> Path:
    """A Hydra multirun folder of tiny models: job 0 and 3 the same pair (summary.json), job 1 without a
    summary (named from its weights), job 2 without weights (a killed job)."""
    from liif_sr.checkpoints import save_weights
    from liif_sr.models.build import build_model

    sweep = root / "multiruns" / "2026-01-01_00-00-00-000000"
    sweep.mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    lte = {"encoder": TINY_MODEL["encoder"], "head": {"name": "lte", "hidden_dim": 8, "hidden_list": [8]}}
    torch.manual_seed(0)
    for job, config in (("0", TINY_MODEL), ("1", lte), ("3", TINY_MODEL)):
        (sweep / job).mkdir()
        save_weights(build_model(config), sweep / job / "model.safetensors")
    for job, ms in (("0", 12.5), ("3", 14.0)):
        summary = {"name": "edsr_tiny-liif", "encoder": "edsr_tiny", "head": "liif", "ms_per_step": ms,
                   "steps_timed": 15, "global_step": 20}  # fmt: skip
        (sweep / job / "summary.json").write_text(json.dumps(summary))
    (sweep / "2").mkdir()
    (sweep / "2" / "train.log").write_text("killed\n")
    (sweep / "10" / "checkpoints").mkdir(parents=True)  # numbered folders sort as numbers, not strings
    save_weights(build_model(lte), sweep / "10" / "checkpoints" / "last.ckpt")
    return sweep


def test_multirun_folder_one_row_per_job(run_eval, mini_set, tmp_path, caplog):
    from liif_sr.evaluation.runner import checkpoint_names

    sweep = _fake_multirun(tmp_path)
    names = checkpoint_names(str(sweep))
    assert list(names) == ["edsr_tiny-liif (job 0)", "edsr_baseline-lte (job 1)", "edsr_tiny-liif (job 3)",
                           "edsr_baseline-lte (job 10)"]  # fmt: skip
    assert names["edsr_tiny-liif (job 3)"] == str(sweep / "3")
    assert "2" in caplog.text and "without weights" in caplog.text

    results, out = run_eval(
        *_mini(mini_set), f"checkpoint={sweep}", "scales=[2]", "first_k=1", "ssim=false"
    )  # fmt: skip
    assert results.models == ["bicubic", *names, "job 2: no weights"]  # issue 18: marked, not dropped
    assert "| job 2: no weights | – |" in (out / "results.md").read_text()
    md = (out / "results.md").read_text()
    assert "| Model | params | ms/step | steps timed | train steps |" in md
    assert "| edsr_tiny-liif (job 0) | " in md and " | 12.5 | 15 | 20 |" in md
    assert "| edsr_baseline-lte (job 1) | " in md and " | – | – | – |" in md  # no summary.json: params only
    assert (out / "psnr_vs_scale.png").is_file()
    doc = json.loads((out / "results.json").read_text())
    assert doc["model_info"]["edsr_tiny-liif (job 3)"]["ms_per_step"] == 14.0
    # found from the multirun folder; each job's summary.json holds its own benchmark numbers
    assert (sweep / "evaluations.txt").read_text().split()[1] == str((out / "results.md").resolve())
    assert (sweep / "eval_latest").resolve() == out.resolve()
    job0 = json.loads((sweep / "0" / "summary.json").read_text())
    assert job0["eval/Mini/x2/psnr"] == pytest.approx(
        results.mean("edsr_tiny-liif (job 0)", "Mini", 2), abs=1e-4
    )
    assert job0["ms_per_step"] == 12.5  # the training's numbers are kept
    assert {r["model"] for r in doc["results"]} == set(results.models) - {"job 2: no weights"}

    for job in ("0", "1", "3"):
        (sweep / job / "model.safetensors").unlink()
    shutil.rmtree(sweep / "10" / "checkpoints")
    with pytest.raises(UserError, match="no weights"):
        checkpoint_names(str(sweep))


# ---------------------------------------------------------------------------------------------------------
# issue 17.5: the table says what it is; the evaluation is found from the multirun folder
# ---------------------------------------------------------------------------------------------------------
def _one_column_results(ssim: float | None) -> EvalResults:
    col = Column("Set5", 4, "given", "benchmark", 4, 1)
    res = EvalResults(models=[BICUBIC, "edsr_baseline_small-liif lr=0.0001"], columns=[col])
    for model, value in zip(res.models, (28.0, 30.0)):
        res.add(model, col, "baby", value, ssim)
    return res


def test_markdown_footnote_first_k_and_failed_rows():
    res = _one_column_results(ssim=None)
    res.meta = {"first_k": 2}
    res.failed = {"edsr_baseline_small-liif lr=1e+07 [failed]": "job 0: non-finite loss at step 1 (epoch 0)"}
    md = format_markdown(res)
    assert "| edsr_baseline_small-liif lr=0.0001 | **30.00** |" in md
    assert "| edsr_baseline_small-liif lr=1e+07 [failed] | failed |" in md
    assert (
        "Failed jobs (not evaluated): edsr_baseline_small-liif lr=1e+07 [failed]: job 0: non-finite loss"
        in md
    )
    assert "PSNR (dB), mean over images" in md and "SSIM" not in md  # ssim=false: the footnote says PSNR
    assert "Only the first 2 images of every set (first_k=2)" in md
    md = format_markdown(_one_column_results(ssim=0.9))
    assert "PSNR (dB) / SSIM, mean over images" in md and "first_k" not in md and "Failed" not in md


def test_plot_legend_is_outside_the_panels(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from liif_sr.evaluation.report import plot_psnr_vs_scale

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    cols = [Column(s, k, "given", "benchmark", k, 1) for s in ("Set5", "Set14") for k in (2, 3, 4)]
    res = EvalResults(models=[BICUBIC, *[f"model {i}" for i in range(5)]], columns=cols)
    for i, model in enumerate(res.models):
        for col in cols:
            res.add(model, col, "x", 30.0 - col.scale + 0.1 * i, None)
    assert plot_psnr_vs_scale(res, tmp_path / "p.png").is_file()
    (fig,) = figures
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (legend,) = fig.legends
    box = legend.get_window_extent(renderer)
    assert len(legend.get_texts()) == 6
    for ax in fig.axes:
        assert not box.overlaps(ax.get_window_extent(renderer)), "the legend covers a panel"


def test_eval_metric_keys_join_the_training_runs():
    from liif_sr.evaluation.eval_logging import metric_key

    assert metric_key("edsr_baseline_small-liif lr=0.0005") == "edsr_baseline_small-liif_lr-0.0005"
    assert metric_key("rdn_small-liif (job 3)") == "rdn_small-liif_job3"
    assert metric_key("a-b lr=1e+07 [failed]") == "a-b_lr-1e+07_failed"
    assert metric_key("bicubic") == "bicubic"


def test_evaluation_is_linked_from_the_multirun_folder(tmp_path):
    from omegaconf import OmegaConf

    from liif_sr.evaluation.multirun_links import LATEST_LINK, link_evaluation, prepare_eval_wandb

    sweep = _fake_multirun(tmp_path)
    for n in (1, 2):
        out = tmp_path / f"eval{n}"
        out.mkdir()
        (out / "results.md").write_text("| Model |\n")
        link_evaluation(str(sweep), out / "results.md")
    lines = (sweep / "evaluations.txt").read_text().splitlines()
    assert [line.split()[1] for line in lines] == [str(tmp_path / f"eval{n}" / "results.md") for n in (1, 2)]
    assert (sweep / LATEST_LINK).resolve() == (tmp_path / "eval2").resolve()
    link_evaluation(
        str(tmp_path / "eval1" / "results.md"), tmp_path / "eval2" / "results.md"
    )  # not a multirun

    cfg = OmegaConf.create(
        {"checkpoint": str(sweep), "logger": {"wandb": {"_target_": "x", "name": None, "group": None}}}
    )
    prepare_eval_wandb(cfg)
    assert cfg.logger.wandb.name == f"eval {sweep.name}" and cfg.logger.wandb.group == sweep.name


def test_failed_jobs_are_marked_rows(tmp_path):
    from liif_sr.evaluation.multirun import failed_jobs
    from liif_sr.evaluation.runner import checkpoint_names

    sweep = _fake_multirun(tmp_path)
    failure = {"name": "edsr_tiny-liif lr=1e+07", "status": "failed", "reason": "non-finite loss at step 3"}
    (sweep / "2" / "summary.json").write_text(json.dumps(failure))  # the killed job: failed, no weights
    (sweep / "1" / "summary.json").write_text(json.dumps({**failure, "reason": "CUDA out of memory"}))
    names = checkpoint_names(str(sweep))
    assert "edsr_tiny-liif lr=1e+07 [failed]" in names  # weights of its last good checkpoint, marked
    assert failed_jobs(sweep) == {"edsr_tiny-liif lr=1e+07 [failed]": "job 2: non-finite loss at step 3"}


def test_lmciaosr_rows_use_the_heads_cell_clip(run_eval, mini_set, tmp_path):
    """An LM-CiaoSR row: cell_clip=auto is the LMF test.py protocol (the x4 cell above x4), as cell_clip=4."""
    from liif_sr.checkpoints import save_weights
    from liif_sr.models.build import build_model

    torch.manual_seed(0)
    head = {"name": "lmciaosr", "attn_hidden": [8], "hidden_list": [8], "hidden_dim": 4, "hidden_depth": 2}
    model = build_model({"encoder": TINY_MODEL["encoder"], "head": head})
    with torch.no_grad():  # non-trivial modulations (the cell enters the latent MLP)
        for p in model.head.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    ckpt = save_weights(model, tmp_path / "lmc.safetensors")
    scores = {}
    for clip in ("auto", "4", "null"):
        results, _ = run_eval(
            *_mini(mini_set), "bicubic=false", f"checkpoint={{m: {ckpt}}}", "scales=[2,6]", "first_k=2",
            "plot=false", "ssim=false", f"cell_clip={clip}", out=f"run_{clip}",
        )  # fmt: skip
        scores[clip] = [r["psnr"] for r in results.per_image]
    assert scores["auto"] == scores["4"]
    assert scores["auto"][:2] == scores["null"][:2]  # x2: below x4 the clip does nothing
    assert scores["auto"][2:] != scores["null"][2:]  # x6: the x4 cell


def test_lm_head_rows_use_the_lmf_cell_clip(run_eval, mini_set, tmp_path):
    """LM-LIIF / LM-LTE rows follow LMF test.py (``cell * max(scale / 4, 1)``): cell_clip auto = x4."""
    from liif_sr.checkpoints import save_weights
    from liif_sr.models.build import build_model

    paths = {}
    for head, extra in (("lmliif", {}), ("lmlte", {"latent_dim": 8})):
        torch.manual_seed(0)
        config = {
            "encoder": TINY_MODEL["encoder"],
            "head": {"name": head, "hidden_list": [8], "hidden_dim": 8, "hidden_depth": 2, **extra},
        }
        paths[head] = save_weights(build_model(config), tmp_path / f"{head}.safetensors")
    ckpts = ", ".join(f"{k}: {v}" for k, v in paths.items())
    results, out = run_eval(
        *_mini(mini_set), "bicubic=false", f"checkpoint={{{ckpts}}}", "scales=[6]", "first_k=1", "plot=false",
        "ssim=false",
    )  # fmt: skip
    md = (out / "results.md").read_text()
    for head in paths:
        assert f"edsr_baseline-{head}: cell clipped to the x4 cell above x4" in md
    unclipped, _ = run_eval(
        *_mini(mini_set), "bicubic=false", f"checkpoint={{{ckpts}}}", "scales=[6]", "first_k=1", "plot=false",
        "ssim=false", "cell_clip=null", out="off",
    )  # fmt: skip
    for head in paths:
        assert results.mean(head, "Mini", 6) != unclipped.mean(head, "Mini", 6)
