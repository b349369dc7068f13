"""Training-speed options shared by :class:`~liif_sr.training.module.SRTrainingModule` and ``scripts/bench_train.py``.

* ``channels_last``: the encoder's conv weights and its input in NHWC memory order (cuDNN's fast layout for
  convolutions, especially in bf16); the LIIF head then gathers contiguous 256-channel rows.
* ``fused_adam``: ``torch.optim.Adam(fused=True)`` (one kernel per parameter instead of about eight elementwise
  passes; on the CPU also free of the per-op thread synchronisation that dominates Adam on a busy machine).
* ``reuse_host_memory``: keep freed host memory in the process (glibc ``mallopt``) instead of returning
  every large block to the kernel; the CPU step otherwise page-faults its ~150 MB activations afresh each step.
* ``compile``: ``torch.compile`` of the whole LIIF forward (encoder and head, one graph). Compilation happens
  at the first call; if it fails (no compiler, an unsupported op, a backend error), a warning is logged and
  training continues in eager mode. Inductor compiles the backward lazily, so the first call also runs a
  throw-away backward to surface backward-compilation failures there rather than inside the optimiser step.

Only ``torch`` is imported here (no Lightning, no Hydra), so the benchmark runs on a bare GPU box.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import inspect
import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

__all__ = ["CompiledOrEager", "SpeedOptions", "build_optimizer", "reuse_host_memory"]


@dataclass(frozen=True)
class SpeedOptions:
    """The ``model.speed`` config block.

    Args:
        channels_last: NHWC memory order for the encoder (weights and input).
        fused_adam: give ``fused=True`` to an Adam/AdamW optimizer factory that does not choose itself.
        reuse_host_memory: keep freed host memory for reuse (:func:`reuse_host_memory`) during training.
        compile: ``torch.compile`` the LIIF forward, falling back to eager on failure.
        compile_mode: ``torch.compile`` mode (``None`` = default, ``"max-autotune"``, ...).
    """

    channels_last: bool = True
    fused_adam: bool = True
    reuse_host_memory: bool = True
    compile: bool = False
    compile_mode: str | None = None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | SpeedOptions | None) -> SpeedOptions:
        if cfg is None:
            return cls()
        if isinstance(cfg, SpeedOptions):
            return cfg
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValueError(f"model.speed: unknown option(s) {unknown}; known: {sorted(known)}")
        mode = cfg.get("compile_mode")
        return cls(
            channels_last=bool(cfg.get("channels_last", True)),
            fused_adam=bool(cfg.get("fused_adam", True)),
            reuse_host_memory=bool(cfg.get("reuse_host_memory", True)),
            compile=bool(cfg.get("compile", False)),
            compile_mode=None if mode in (None, "", "default") else str(mode),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class CompiledOrEager:
    """Call ``torch.compile(module)``; on a compilation failure warn once and call ``module`` eagerly.

    Not an ``nn.Module`` on purpose: stored on a LightningModule it adds no ``_orig_mod.`` state-dict keys.

    Args:
        module: the module to run (its ``forward``).
        name: shown in the warning.
        mode: ``torch.compile`` mode.
        probe_backward: at the first call with autograd on, also run (and discard) a backward through the
            compiled graph, so that a failing backward compilation falls back to eager too.
        compiler: the compile function (tests inject a failing one).
    """

    def __init__(
        self,
        module: nn.Module,
        name: str = "model",
        mode: str | None = None,
        probe_backward: bool = True,
        compiler: Callable[..., Callable[..., Any]] | None = None,
    ) -> None:
        self.module, self.name, self.probe_backward = module, name, probe_backward
        compile_fn = compiler or torch.compile
        self.compiled: Callable[..., Any] | None
        try:
            self.compiled = compile_fn(module, mode=mode, dynamic=False)
        except Exception as exc:  # e.g. torch.compile unsupported on this Python / platform
            self._fail(exc)
        self.verified = False

    @property
    def active(self) -> bool:
        """Whether calls go through the compiled module."""
        return self.compiled is not None

    def _fail(self, exc: BaseException) -> None:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        log.warning(
            "torch.compile of %s failed (%s: %s); continuing in eager mode",
            self.name,
            type(exc).__name__,
            first,
        )
        self.compiled = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.compiled is None:
            return self.module(*args, **kwargs)
        if self.verified:
            return self.compiled(*args, **kwargs)
        try:
            out = self.compiled(*args, **kwargs)
            if (
                self.probe_backward
                and torch.is_grad_enabled()
                and isinstance(out, Tensor)
                and out.requires_grad
            ):
                params = [p for p in self.module.parameters() if p.requires_grad]
                torch.autograd.grad(out.float().sum(), params, allow_unused=True)
                out = self.compiled(*args, **kwargs)  # the probe consumed the graph: run again
        except Exception as exc:  # compilation errors surface at the first call
            self._fail(exc)
            return self.module(*args, **kwargs)
        self.verified = True
        return out


_ADAMS = (torch.optim.Adam, torch.optim.AdamW)


def build_optimizer(
    factory: Callable[..., torch.optim.Optimizer], params: Any, fused_adam: bool = True
) -> torch.optim.Optimizer:
    """``factory(params=params)``, with ``fused=True`` added for Adam/AdamW when ``fused_adam``.

    Only where the config leaves the implementation open (no ``fused``/``foreach`` given); a device without a
    fused Adam kernel gets the plain one. The fused update is the same arithmetic per element (losses equal
    to rounding: ``tests/training/test_train_speed.py``).
    """
    params = list(params)
    func = factory.func if isinstance(factory, partial) else factory
    given = set(factory.keywords) if isinstance(factory, partial) else set()
    if fused_adam and inspect.isclass(func) and issubclass(func, _ADAMS) and not given & {"fused", "foreach"}:
        try:
            return factory(params=params, fused=True)
        except (RuntimeError, ValueError) as exc:  # no fused kernel for this device / dtype
            log.info("fused Adam unavailable (%s); using the default implementation", exc)
    return factory(params=params)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4  # glibc mallopt parameters
_GLIBC_MMAP_THRESHOLD_MAX = 32 * 2**20  # where glibc's dynamic mmap threshold stops growing (64-bit)


def reuse_host_memory(enable: bool = True) -> bool:
    """Keep freed host memory in the process for reuse (glibc only; returns whether it applied).

    glibc serves blocks above 32 MB with ``mmap`` and unmaps them on free, so every training step touches
    its large activations (the head's (4·B·Q, 256) fp32 matrices are ~150 MB each) as fresh pages: about
    0.4 M page faults (zeroing ~1.7 GB) per EDSR-LIIF step at the paper's shapes. With ``mmap`` off and the
    trim threshold at its maximum, freed blocks stay in the heap and the next step reuses them. Results are
    unchanged (only where the memory comes from); the process keeps its peak heap until it exits.

    ``enable=False`` puts back glibc's behaviour as its dynamic thresholds settle for such a workload (mmap
    above 32 MB, trim above 64 MB): ``scripts/bench_train.py`` times the official step that way.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    if enable:
        settings = {_M_MMAP_MAX: 0, _M_TRIM_THRESHOLD: 2**31 - 1}
    else:
        limit = _GLIBC_MMAP_THRESHOLD_MAX
        settings = {_M_MMAP_MAX: 65536, _M_MMAP_THRESHOLD: limit, _M_TRIM_THRESHOLD: 2 * limit}
    applied = [mallopt(key, value) for key, value in settings.items()]  # every one, no short circuit
    return all(applied)


def channels_last_input(x: Tensor) -> Tensor:
    """``x`` in NHWC memory order (a no-op when it already is)."""
    return x.contiguous(memory_format=torch.channels_last)
