"""Helpers shared by several test modules (composing the real training config, single-threaded torch)."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

#: tiny training data for 1-2 step runs (two skimage photos, 16-px LR crops, 64 queries, one validation photo)
TINY_DATA = [
    "data.repeat=1",
    "data.batch_size=2",
    "data.inp_size=16",
    "data.sample_q=64",
    "data.train_sources=[skimage:astronaut,skimage:rocket]",
    "data.val_sources=[skimage:coffee]",
]


def compose_in(run_dir: Path, *overrides: str, mkdir: bool = True):
    """Compose ``train.yaml`` for a run writing into ``run_dir`` (what Hydra's ``hydra.run.dir`` does).

    The HydraConfig is set (callbacks and loggers read it); logs go to ``run_dir.parent / "logs"``.
    """
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    GlobalHydra.instance().clear()
    with initialize_config_module("liif_sr.conf", version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[f"paths.log_dir={run_dir.parent}/logs", f"hydra.run.dir={run_dir}", *overrides],
            return_hydra_config=True,
        )
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
    GlobalHydra.instance().clear()
    if mkdir:
        run_dir.mkdir(parents=True, exist_ok=True)
    return cfg


def load_script(relative: str):
    """The module of ``scripts/<relative>`` (e.g. ``"bench/decode_floor.py"``), freshly executed."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """``n`` torch intra-op threads meanwhile, then the previous count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def one_thread() -> contextlib.AbstractContextManager[None]:
    """Tiny tensors: intra-op threads only add barriers (minutes instead of seconds on a shared CPU)."""
    return torch_threads(1)


def metasr_test_model(hidden: list[int] | None = None, fast: bool = True) -> torch.nn.Module:
    """A small EDSR-baseline + MetaSR model (weight MLP ``hidden`` wide, default [32]) with perturbed head
    weights, in eval mode: the MetaSR decode tests' model."""
    from liif_sr.models import build_model

    torch.manual_seed(0)
    config = {"encoder": {"name": "edsr_baseline", "args": {"n_resblocks": 1, "n_feats": 8}}}
    config["head"] = {"name": "metasr", "hidden_list": hidden or [32]}
    model = build_model(config, head_mode="fast" if fast else "plain").eval()
    with torch.no_grad():
        for p in model.head.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def pixel_grid(b: int, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``b`` copies of the pixel-centre coordinates and cells of an output ``size``: (b, H·W, 2) each."""
    from liif_sr.coords import make_coord

    coord = make_coord(size).unsqueeze(0).expand(b, -1, -1).contiguous()
    cell = torch.ones_like(coord) * torch.tensor([2 / size[0], 2 / size[1]])
    return coord, cell


def have_compiler() -> bool:
    return shutil.which(shlex.split(os.environ.get("CC") or "cc")[0]) is not None


def require_compiler() -> None:
    """Skip without a C compiler; fail instead when CI=true (CI has gcc)."""
    if have_compiler():
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("no C compiler in CI: the kernels cannot be tested")
    pytest.skip("no C compiler (cc / $CC)")


def require_metasr_kernel() -> None:
    """Skip where the MetaSR kernel has no vector build here; fail instead when CI=true (CI builds it)."""
    from liif_sr.models.heads import metasr_kernel

    if metasr_kernel.fast_library() is not None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("the MetaSR kernel is expected in CI")
    pytest.skip("no MetaSR kernel here")


@contextlib.contextmanager
def lm_kernel_used() -> Iterator[None]:
    """Around the LM heads' parity tests: where a C compiler and AVX2/AVX-512 exist (and ``LIIF_SR_KERNELS`` is not
    0), their fast decode must have run on the fused kernel (:mod:`liif_sr.kernels.lmf`) at least once."""
    from liif_sr.kernels import lmf

    expected = have_compiler() and os.environ.get("LIIF_SR_KERNELS", "1") != "0" and lmf.fast()
    calls = []
    decode = lmf.decode

    def counted(*args, **kwargs):
        calls.append(1)
        return decode(*args, **kwargs)

    lmf.decode = counted
    try:
        yield
    finally:
        lmf.decode = decode
    if expected:
        assert calls, "the LM heads' parity tests did not run the fused kernel"
