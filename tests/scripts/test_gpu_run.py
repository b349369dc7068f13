"""The GPU command of issue #13 (``scripts/gpu_run.sh``) in its CPU dry run, on the carried layout only.

``gpu_prep.py --tiny`` builds the carried folder (Hydra & co. copied from this interpreter, a few tiny images)
in tmp; the dry run then runs every step (environment check, bench_train with loss parity, bench_infer with
the tiled case and the Set5 fp32/bf16 check, fine-tuning from the shipped weights, liif-sr-eval, the summary)
with PYTHONPATH = src + the carried packages and the data from the carried folder only.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("LIIF_SR_SHARED_DATA", ROOT / "../shared/data"))
if not (SHARED / "train" / "T91").is_dir():
    SHARED = ROOT / "../../shared/data"
needs_data = pytest.mark.skipif(
    not (SHARED / "train" / "T91").is_dir(), reason="needs the shared data folder (../shared/data)"
)


def _prep(dest: Path) -> dict:
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts/gpu_prep.py"),
            "--tiny",
            "--dest",
            str(dest),
            "--data",
            str(SHARED),
        ],
        check=True,
        timeout=120,
    )
    return json.loads((dest / "MANIFEST.json").read_text())


@needs_data
def test_gpu_prep_tiny_layout(tmp_path):
    manifest = _prep(tmp_path / "carry")
    py, data = tmp_path / "carry" / "py", tmp_path / "carry" / "data"
    for name in ("hydra", "omegaconf", "antlr4", "yaml", "safetensors"):
        assert (py / name / "__init__.py").is_file(), name
    assert not list(py.rglob("__pycache__")) and not list(py.rglob("*.cpython-*.so"))
    assert list(py.rglob("*abi3.so"))  # safetensors' extension works on any CPython >= 3.8
    for s in (2, 3, 4, 8):
        assert len(list((data / f"benchmark/Set5/LR_bicubic/X{s}").glob("*.png"))) == 2
    assert manifest["bytes"]["total"] <= manifest["bytes"]["limit"]


@needs_data
def test_gpu_run_dry_run(tmp_path):
    carry, out = tmp_path / "carry", tmp_path / "out"
    _prep(carry)
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LIIF_SR_SHARED_DATA")},
        "OUT": str(out),
        "GPU_CARRY": str(carry),
        "PYTHON": sys.executable,
        "TMPDIR": str(tmp_path),
    }
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts/gpu_run.sh"), "--dry-run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    # every step ran, none timed out
    steps = [line.split("\t") for line in (out / "steps.tsv").read_text().splitlines()]
    assert [s[0] for s in steps] == [
        "check",
        "bench_train",
        "bench_infer",
        "bench_heads",
        "bench_lmf",
        "finetune",
        "eval",
    ]
    assert all(s[1] == "0" for s in steps), steps

    # the bare-machine layout: Hydra & co. from the carried copies, liif_sr from this checkout
    mods = json.loads((out / "env.json").read_text())["modules"]
    for name in ("hydra", "omegaconf", "yaml", "safetensors"):
        assert mods[name]["file"].startswith(str(carry)), (name, mods[name])
    assert mods["liif_sr"]["file"].startswith(str(ROOT / "src"))

    # a. training benchmark: both models, model only + end to end, loss parity
    bench = json.loads((out / "bench_train.json").read_text())
    assert bench["complete"]
    rows = {(r["model"], r["variant"], r["data"]) for r in bench["rows"]}
    for model in ("EDSR-small-LIIF", "RDN-small-LIIF"):
        assert (model, "fp32 ref", "synthetic on device") in rows
        assert (model, "fast", "device sampler") in rows
        assert (model, "fp32 ref", "CPU workers x1") in rows
        par = bench["meta"]["parity"][model]
        assert par["steps"] == 6 and len(par["ref_curve"]) == 6 and par["ok"]  # fp32 on the CPU: same curve
        assert all(math.isfinite(x) and 0 < x < 2 for x in par["ref_curve"] + par["fast_curve"])
    assert all(r["ms_per_step"] > 0 for r in bench["rows"])

    # b. inference benchmark: every case incl. the tiled one, both batches, the Set5 precision check
    infer = json.loads((out / "bench_infer.json").read_text())
    assert infer["complete"] and infer["tiny"]
    cases = {
        (r["case"].split(" ")[0], r["model"], r["path"].split(" (")[0], r["batch"]) for r in infer["rows"]
    }
    for model in ("EDSR-small-LIIF", "RDN-small-LIIF"):
        for batch in (1, 2):
            assert ("100²", model, "fast bf16", batch) in cases
            assert ("100²", model, "fast auto=fp32", batch) in cases  # the default (conftest: no native bf16)
        assert ("512²", model, "plain", 1) in cases
        assert ("3456×4608", model, "fast bf16", 1) in cases
    assert all(r["ms_per_image"] > 0 for r in infer["rows"])
    tiled = [r for r in infer["rows"] if r["case"].startswith("3456")]
    assert all(r["tile"] == 16 for r in tiled)
    set5 = infer["set5"]
    assert set(set5["scales"]) == {"x2", "x4", "x8"}
    for r in set5["scales"].values():
        assert 20 < r["fp32"] < 60 and abs(r["delta_db"]) < 1 and r["images"] == 2
        assert r["auto_delta_db"] == 0  # auto = fp32 here; on the GPU: bf16-decode, within 0.01 dB

    # b3. every other head (issue 21): plain, fast fp32 and the default per head, fast within rounding of plain
    heads = json.loads((out / "bench_heads.json").read_text())
    assert heads["complete"]
    by_model: dict[str, dict[str, dict]] = {}
    for r in heads["rows"]:
        by_model.setdefault(r["model"], {})[r["path"].split(" (")[0]] = r
    assert len(by_model) == 6, sorted(by_model)
    for model, paths in by_model.items():
        assert {"plain", "fast fp32", "fast auto=fp32"} <= set(paths), (model, sorted(paths))
        diff = paths["fast fp32"]["max_abs_diff_vs_ref"]
        assert diff < 1e-4, (model, diff)

    # b2. LM heads' decode (issue 20): a row per head and case
    lmf = (out / "bench_lmf.log").read_text()
    for case in ("100-800", "256-2048"):
        for head in ("lmliif", "lmlte", "lmciaosr"):
            assert f"| {case} | {head} |" in lmf

    # c. fine-tuning plan, weights, evaluation against the shipped model
    plan = json.loads((out / "finetune_plan.json").read_text())
    assert plan["max_steps"] == 3 and not plan["skip"]
    assert (out / "finetuned-edsr-baseline-liif.safetensors").stat().st_size > 5e6  # the full EDSR-baseline
    results = json.loads((out / "eval" / "results.json").read_text())
    assert set(results["models"]) == {"finetuned", "shipped"}

    # the summary: targets, fine-tune table and verdict
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["targets"]) >= 10
    ft = summary["finetune"]
    assert [c["column"] for c in ft["eval"]] == [f"{s} ×{k}" for s in ("Set5", "Set14") for k in (2, 3, 4)]
    assert all(c["finetuned"] is not None and c["shipped"] is not None for c in ft["eval"])
    assert isinstance(ft["better_on_every_column"], bool)
    assert ft["train"]["last_logged_step"] is not None
    md = (out / "summary.md").read_text()
    assert "Better on every column" in md and "loss parity" in md
    bm = (out / "BENCHMARKS.md").read_text()
    assert "loss parity" in bm and "Set5 Y-PSNR" in bm
    assert bm.startswith((ROOT / "BENCHMARKS.md").read_text().split("\n")[0])


def _gpu_args() -> dict[str, list[str]]:
    """The argument lists of the real (GPU) run, as ``gpu_run.sh --print-args`` prints them."""
    import shlex

    out = subprocess.run(
        ["bash", str(ROOT / "scripts/gpu_run.sh"), "--print-args"], capture_output=True, text=True, check=True
    ).stdout
    return {line.split(" ", 1)[0]: shlex.split(line.split(" ", 1)[1]) for line in out.splitlines() if line}


def test_gpu_flavour_arguments_parse_and_compose(compose_train):
    """What only the GPU run passes (compile, bf16-mixed trainer, cosine schedule, ...) parses and composes
    here, so the one GPU command cannot fail on a typo the dry run does not exercise."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import bench_infer
        import bench_lmf
        import bench_train
    finally:
        sys.path.pop(0)
    args = _gpu_args()
    bt = bench_train.parse_args([*args["BENCH_TRAIN"], "--data", "d", "--json", "j.json"])
    assert bt.compile and bt.parity_steps == 300 and bt.models == ["edsr", "rdn"] and bt.time_budget > 0
    bi = bench_infer.build_parser().parse_args([*args["BENCH_INFER"], "--large", "--set5", "s"])
    assert (
        bi.device == "cuda"
        and bi.batch == "1,16"
        and set(bi.cases.split(",")) == set(bench_infer.CASES) - {"tiny"}
    )  # tiny: the smoke case of test_bench_infer

    lmf = _gpu_args()["BENCH_LMF"]
    assert lmf[lmf.index("--device") + 1] == "cuda" and lmf[lmf.index("--max-queries") + 1] == "0"
    with pytest.raises(SystemExit):  # bench_lmf validates its arguments before it times anything
        bench_lmf.main([*lmf, "--cases", "nope"])

    from hydra.utils import instantiate

    from liif_sr.train import init_weights

    ft = [o for o in args["FT"] if not o.startswith("hydra.")]
    cfg = compose_train(*ft)
    assert cfg.trainer.precision == "bf16-mixed" and cfg.trainer.accelerator == "gpu"
    assert cfg.model.speed.compile and cfg.model.speed.channels_last and cfg.data.sampler == "device"
    assert cfg.trainer.max_steps == 1000 and cfg.trainer.max_time == "00:00:03:00"
    module = instantiate(cfg.model, _convert_="all")
    init_weights(module.net, cfg.init_weights)  # the shipped weights fit the experiment's model
    opt = module.configure_optimizers()
    sched = opt["lr_scheduler"]["scheduler"]
    assert type(sched).__name__ == "OneCycleLR" and sched.total_steps == 1010
    lrs = [opt["optimizer"].param_groups[0]["lr"]]
    for _ in range(1000):
        opt["optimizer"].step()
        sched.step()
        lrs.append(opt["optimizer"].param_groups[0]["lr"])
    assert lrs[0] == pytest.approx(4e-6) and max(lrs) == pytest.approx(1e-4, rel=1e-3)
    assert lrs.index(max(lrs)) == pytest.approx(50, abs=2) and lrs[-1] < 2e-6  # warm-up, then cosine down
    assert opt["lr_scheduler"]["interval"] == "step" and opt["optimizer"].defaults["fused"]

    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_module("liif_sr.conf", version_base="1.3"):
        ev = compose("eval", overrides=[o for o in args["EV"] if not o.startswith("hydra.")])
    assert dict(ev.checkpoint) == {
        "finetuned": "/tmp/gpu_run/finetune/model.safetensors",
        "shipped": "edsr-baseline-liif",
    }
    assert set(ev.benchmark) == {"set5", "set14"} and list(ev.scales) == [2, 3, 4] and ev.device == "cuda"
