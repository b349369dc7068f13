"""``gpu_tools.py check``: the environment check of ``scripts/gpu_run.sh`` (imports, shipped model, data, CUDA)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from bench.gpu_common import ROOT, _write


# ------------------------------------------------------------------------------------------------- check
def check(out: Path, dry_run: bool) -> int:
    problems: list[str] = []
    env: dict = {"python": sys.version.split()[0], "executable": sys.executable, "modules": {}}
    carry = Path(os.environ.get("GPU_CARRY", ROOT / ".gpu"))
    for name in (
        "torch",
        "numpy",
        "PIL",
        "lightning",
        "torchmetrics",
        "tqdm",
        "yaml",
        "omegaconf",
        "hydra",
        "safetensors",
        "liif_sr",
        "liif_sr.train",
        "liif_sr.evaluate",
    ):
        try:
            mod = __import__(name, fromlist=["_"])
            env["modules"][name] = {
                "file": getattr(mod, "__file__", None),
                "version": getattr(mod, "__version__", None),
            }
        except Exception as exc:  # noqa: BLE001 - report every failure, then stop
            problems.append(f"import {name}: {type(exc).__name__}: {exc}")
    src = env["modules"].get("liif_sr", {}).get("file") or ""
    if src and not Path(src).resolve().is_relative_to((ROOT / "src").resolve()):
        problems.append(f"liif_sr imported from {src}, not from this checkout's src/ (PYTHONPATH?)")
    if not problems:
        import torch

        from liif_sr import load_model

        env["torch"] = torch.__version__
        env["cuda"] = torch.cuda.is_available()
        if env["cuda"]:
            props = torch.cuda.get_device_properties(0)
            env["gpu"] = {"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1)}
            env["tf32"] = {
                "matmul": torch.backends.cuda.matmul.allow_tf32,
                "cudnn": torch.backends.cudnn.allow_tf32,
            }
        elif not dry_run:
            problems.append("CUDA is not available (use --dry-run on a CPU machine)")
        try:
            model = load_model("edsr-baseline-liif")
            env["shipped_params"] = sum(p.numel() for p in model.parameters())
        except Exception as exc:  # noqa: BLE001
            problems.append(f"load_model('edsr-baseline-liif'): {exc}")
    data = carry / "data"
    env["data"] = {}
    for rel in ("train/T91", "train/BSDS400", "benchmark/Set5/HR", "benchmark/Set14/HR"):
        n = len(list((data / rel).glob("*"))) if (data / rel).is_dir() else 0
        env["data"][rel] = n
        if not n:
            problems.append(f"no images in {data / rel} (run `make gpu-prep` and carry .gpu)")
    for s in (2, 3, 4, 8):
        if not (data / f"benchmark/Set5/LR_bicubic/X{s}").is_dir():
            problems.append(f"missing {data}/benchmark/Set5/LR_bicubic/X{s}")
    env["problems"] = problems
    out.mkdir(parents=True, exist_ok=True)
    _write(out / "env.json", json.dumps(env, indent=1, default=str) + "\n")
    for p in problems:
        print(f"gpu_run check: {p}", file=sys.stderr)
    if not problems:
        where = {
            k: v["file"] for k, v in env["modules"].items() if k in ("hydra", "omegaconf", "safetensors")
        }
        print(
            f"gpu_run check: ok; python {env['python']}, torch {env.get('torch')}, gpu {env.get('gpu')}; {where}"
        )
    return 1 if problems else 0
