#!/usr/bin/env python
"""Fill the git-ignored ``.gpu/`` folder that travels with the GPU command (``make gpu-prep``).

The device machine is bare: PyTorch, Lightning, torchmetrics, scikit-image and Pillow, but no Hydra,
omegaconf or safetensors, no internet, and ``../shared`` does not travel. This copies, on the CPU machine:

* ``.gpu/py/``: the pure-Python packages ``hydra``, ``omegaconf``, ``antlr4`` and ``yaml`` (its C
  extension left out: PyYAML falls back to pure Python) and ``safetensors`` (its extension is ``abi3``:
  any CPython >= 3.8 on x86_64 Linux) from this interpreter's site-packages, without ``__pycache__``;
* ``.gpu/data/``: ``train/T91``, ``train/BSDS400`` (fine-tuning), ``benchmark/Set5`` (HR + LR_bicubic
  X2/X3/X4/X8) and ``benchmark/Set14`` (HR + LR_bicubic X2/X3/X4), the layout of ``../shared/data``;
* ``.gpu/MANIFEST.json``: sizes, the interpreter the packages came from, and the measured size of what
  travels (working tree + ``.gpu``), which must stay within the device tool's 64 MiB.

``--tiny`` makes the dry-run variant: a few training images and 48x48 crops of two Set5/Set14 images with
PIL-bicubic LR files (``scripts/gpu_run.sh --dry-run``, ``tests/scripts/test_gpu_run.py``).

    python scripts/gpu_prep.py                          # -> .gpu (about 50 MiB)
    python scripts/gpu_prep.py --tiny --dest /tmp/carry  # dry-run layout, a few hundred KiB
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("hydra", "omegaconf", "antlr4", "yaml", "safetensors")
#: what the GPU run needs from the shared data folder (relative paths, copied as they are)
DATA = (
    "train/T91",
    "train/BSDS400",
    "benchmark/Set5/HR",
    "benchmark/Set5/LR_bicubic/X2",
    "benchmark/Set5/LR_bicubic/X3",
    "benchmark/Set5/LR_bicubic/X4",
    "benchmark/Set5/LR_bicubic/X8",
    "benchmark/Set14/HR",
    "benchmark/Set14/LR_bicubic/X2",
    "benchmark/Set14/LR_bicubic/X3",
    "benchmark/Set14/LR_bicubic/X4",
)
TINY_SCALES = {"Set5": (2, 3, 4, 8), "Set14": (2, 3, 4)}
CARRY_LIMIT = 64 * 2**20  # the device tool: working tree + carried paths


def find_data(explicit: str | None) -> Path:
    candidates = [explicit] if explicit else []
    candidates += [os.environ.get("LIIF_SR_SHARED_DATA"), ROOT / "../shared/data", ROOT / "../../shared/data"]
    for c in candidates:
        if c and (Path(c) / "train" / "T91").is_dir():
            return Path(c).resolve()
    raise SystemExit(
        "gpu_prep: no shared data folder with train/T91 found; pass --data DIR or set LIIF_SR_SHARED_DATA"
    )


def _ignore(directory: str, names: list[str]) -> set[str]:
    # version-specific C extensions (cpython-311-...so) would not load on another Python: PyYAML falls back
    return {n for n in names if n == "__pycache__" or (".cpython-" in n and n.endswith(".so"))}


def copy_packages(dest: Path) -> dict[str, str]:
    dest.mkdir(parents=True, exist_ok=True)
    origins = {}
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit(f"gpu_prep: package {name!r} is not installed in {sys.executable}")
        src = Path(next(iter(spec.submodule_search_locations)))
        shutil.rmtree(dest / name, ignore_errors=True)
        shutil.copytree(src, dest / name, ignore=_ignore)
        origins[name] = str(src)
    return origins


def copy_data(src: Path, dest: Path) -> None:
    for rel in DATA:
        if not (src / rel).is_dir():
            raise SystemExit(f"gpu_prep: {src / rel} is missing")
        shutil.rmtree(dest / rel, ignore_errors=True)
        shutil.copytree(src / rel, dest / rel)


def tiny_data(src: Path, dest: Path, n_train: int = 4, n_bench: int = 2, crop: int = 48) -> None:
    """A few training images, and ``crop``² centre crops of benchmark images with PIL-bicubic LR files."""
    from PIL import Image

    for folder in ("train/T91", "train/BSDS400"):
        out = dest / folder
        out.mkdir(parents=True, exist_ok=True)
        for f in sorted((src / folder).iterdir())[:n_train]:
            shutil.copy2(f, out / f.name)
    for name, scales in TINY_SCALES.items():
        hr_dir = dest / "benchmark" / name / "HR"
        hr_dir.mkdir(parents=True, exist_ok=True)
        for f in sorted((src / "benchmark" / name / "HR").iterdir())[:n_bench]:
            img = Image.open(f).convert("RGB")
            left, top = (img.width - crop) // 2, (img.height - crop) // 2
            hr = img.crop((left, top, left + crop, top + crop))
            hr.save(hr_dir / f"{f.stem}.png")
            for s in scales:
                lr_dir = dest / "benchmark" / name / "LR_bicubic" / f"X{s}"
                lr_dir.mkdir(parents=True, exist_ok=True)
                hr.resize((crop // s, crop // s), Image.BICUBIC).save(lr_dir / f"{f.stem}x{s}.png")


def tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def worktree_bytes() -> int | None:
    """Tracked + untracked-not-ignored files: what the device tool copies besides the carried paths."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    files = [ROOT / p.decode() for p in out.split(b"\0") if p]
    return sum(f.stat().st_size for f in files if f.is_file())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dest", type=Path, default=ROOT / ".gpu", help="output folder (default: .gpu)")
    p.add_argument(
        "--data", default=None, help="shared data folder (default: $LIIF_SR_SHARED_DATA, ../shared/data)"
    )
    p.add_argument("--tiny", action="store_true", help="dry-run variant: a few tiny images")
    args = p.parse_args(argv)
    src = find_data(args.data)
    dest = args.dest.resolve()
    origins = copy_packages(dest / "py")
    if args.tiny:
        shutil.rmtree(dest / "data", ignore_errors=True)
        tiny_data(src, dest / "data")
    else:
        copy_data(src, dest / "data")
    sizes = {"py": tree_bytes(dest / "py"), "data": tree_bytes(dest / "data")}
    carry = sizes["py"] + sizes["data"]
    tree = worktree_bytes()
    total = carry + (tree or 0)
    manifest = {
        "tiny": args.tiny,
        "data_source": str(src),
        "packages": origins,
        "python_of_packages": platform.python_version(),
        "bytes": {**sizes, "carry": carry, "worktree": tree, "total": total, "limit": CARRY_LIMIT},
        "carry": [os.path.relpath(dest, ROOT)] if dest.is_relative_to(ROOT) else [str(dest)],
    }
    (dest / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
    mib = 2**20
    print(
        f"gpu_prep: {dest}: packages {sizes['py'] / mib:.1f} MiB, data {sizes['data'] / mib:.1f} MiB; "
        f"with the working tree ({(tree or 0) / mib:.1f} MiB) {total / mib:.1f} MiB of the 64 MiB"
    )
    if total > CARRY_LIMIT:
        print("gpu_prep: error: more than the device tool's 64 MiB would travel", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
