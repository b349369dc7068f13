"""Training-speed options shared by :class:`~liif_sr.training.module.SRTrainingModule` and ``scripts/bench_train.py``.

* ``channels_last``: the encoder's conv weights and its input in NHWC memory order (cuDNN's fast layout for
  convolutions, especially in bf16); the LIIF head then gathers contiguous 256-channel rows.
* ``compile``: ``torch.compile`` of the whole LIIF forward (encoder and head, one graph). Compilation happens
  at the first call; if it fails (no compiler, an unsupported op, a backend error), a warning is logged and
  training continues in eager mode. Inductor compiles the backward lazily, so the first call also runs a
  throw-away backward to surface backward-compilation failures there rather than inside the optimiser step.

Only ``torch`` is imported here (no Lightning, no Hydra), so the benchmark runs on a bare GPU box.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

__all__ = ["CompiledOrEager", "SpeedOptions"]


@dataclass(frozen=True)
class SpeedOptions:
    """The ``model.speed`` config block.

    Args:
        channels_last: NHWC memory order for the encoder (weights and input).
        compile: ``torch.compile`` the LIIF forward, falling back to eager on failure.
        compile_mode: ``torch.compile`` mode (``None`` = default, ``"max-autotune"``, ...).
    """

    channels_last: bool = False
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
            channels_last=bool(cfg.get("channels_last", False)),
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


def channels_last_input(x: Tensor) -> Tensor:
    """``x`` in NHWC memory order (a no-op when it already is)."""
    return x.contiguous(memory_format=torch.channels_last)
