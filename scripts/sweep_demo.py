"""The researcher's loop end to end (issue #17): a 3-job LR grid with W&B offline, one job diverging, the sweep
SIGKILLed while a later job trains, resumed with one command, evaluated into one table; then the W&B records
are read back from the offline ``.wandb`` files (names, groups, steps, best/last ``val/psnr``).

    python scripts/sweep_demo.py --root /tmp/sweep_demo [--benchmark-dir ../shared/data/benchmark]

Prints every command it runs with its exit code, and a summary. CPU, about 2-4 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
GRID = [
    "-m",
    "model.optimizer.lr=1e7,5e-4,1e-4",
    "logger=[csv,wandb]",
    "trainer.max_epochs=3",
    "trainer.check_val_every_n_epoch=1",
    "data.repeat=20",
    "callbacks.quickstart_report=null",
    "callbacks.model_checkpoint.every_n_epochs=1",
]


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> int:
    print("$", " ".join(cmd[:1] + [f"'{c}'" if "[" in c or "," in c else c for c in cmd[1:]]), flush=True)
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
    print("  exit", proc.returncode, "|", " / ".join(tail)[-600:], flush=True)
    return proc.returncode


def records(run_file: Path) -> tuple[dict, list[dict], dict]:
    """(run, history rows, summary) of an offline ``run-<id>.wandb`` file."""
    from liif_sr.training.loggers.wandb_records import read_run

    rec = read_run(run_file)
    return {"id": rec.run_id, "group": rec.group, "name": rec.name}, rec.history, rec.summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path("/tmp/sweep_demo"))
    ap.add_argument(
        "--benchmark-dir", default=os.environ.get("LIIF_SR_BENCHMARK_DIR", "../shared/data/benchmark")
    )
    args = ap.parse_args()
    root = args.root.resolve()
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    env = {
        **os.environ,
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(root),
        "WANDB_CONFIG_DIR": str(root / ".wb"),
    }
    env["LIIF_SR_BENCHMARK_DIR"] = str(Path(args.benchmark_dir).resolve())
    sweep = root / "logs" / "lr_sweep"
    cmd = [str(BIN / "liif-sr-train"), *GRID, f"hydra.sweep.dir={sweep}"]
    print("$", " ".join(cmd), "  # SIGKILLed once job 1 has its first checkpoint", flush=True)
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    target = sweep / "1" / "checkpoints" / "epoch_0000.ckpt"
    while proc.poll() is None and not target.exists():
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    print(
        f"  killed (exit {proc.returncode}); job folders: {sorted(p.name for p in sweep.iterdir() if p.name.isdigit())}"
    )
    run([str(BIN / "liif-sr-train"), f"resume={sweep}"], root, env)
    run([str(BIN / "liif-sr-eval"), f"checkpoint={sweep}", "benchmark=[set5]", "scales=[2,4]", "ssim=false",
         "logger=wandb", f"paths.benchmark_dir={env['LIIF_SR_BENCHMARK_DIR']}"], root, env)  # fmt: skip
    print((sweep / "sweep_status.json").read_text() if (sweep / "sweep_status.json").exists() else "")
    md = sweep / "eval_latest" / "results.md"
    print(md.read_text() if md.exists() else "(no eval table)")
    evals = sorted((root / "logs" / "eval").glob("runs/*/wandb/offline-run-*/run-*.wandb"))
    for run_file in [*sorted(sweep.glob("**/offline-run-*/run-*.wandb")), *evals]:
        info, rows, summary = records(run_file)
        steps = [r.get("_step") for r in rows]
        psnr = [(r.get("_step"), round(r["val/psnr"], 3)) for r in rows if "val/psnr" in r]
        keep = {
            k: v
            for k, v in summary.items()
            if k.startswith(("val/", "status", "failure", "eval/", "train/ms"))
        }
        print(f"{run_file.relative_to(root)}: name={info.get('name')!r} group={info.get('group')!r} "
              f"id={info.get('id')} steps={steps[:1]}..{steps[-1:]} ({len(rows)} rows) val/psnr={psnr} "
              f"summary={json.dumps(keep)[:400]}")  # fmt: skip


if __name__ == "__main__":
    main()
