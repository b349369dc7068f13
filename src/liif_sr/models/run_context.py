"""How the inference API (:meth:`ImplicitSR.prepare` / :meth:`~ImplicitSR.decode` / :meth:`~ImplicitSR.query` /
:meth:`~ImplicitSR.upscale`) runs a model, whatever the caller's tensors and grad mode (issue 18, class 7).

* **dtypes**: inputs of any floating dtype (float64, float16, bfloat16, float32) are cast to the model's
  working dtype (:func:`working_dtype`: float32, or float64 for a float64 model); a float16/bfloat16 model runs
  under ``torch.autocast`` of its dtype (its convolutions and MLPs in half precision, the heads' coordinate and
  area arithmetic in float32). Results come back in the dtype of ``lr``.
* **autograd**: the API is for inference: it runs under ``torch.no_grad()`` unless grad mode is on **and** an
  input (``lr``, ``coord``, ``cell``, or the prepared state) requires grad — then the graph is kept, for
  gradients with respect to the inputs. Gradients with respect to the weights are training's
  (:meth:`ImplicitSR.forward`).
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor

from liif_sr.errors import InvalidArgumentError

_HALF = (torch.float16, torch.bfloat16)


def working_dtype(param: Tensor) -> torch.dtype:
    """The dtype inputs are cast to for a model whose parameters are like ``param``."""
    return torch.float64 if param.dtype == torch.float64 else torch.float32


def wants_grad(*tensors: object) -> bool:
    """Whether grad mode is on and one of ``tensors`` requires grad (then the API keeps the graph)."""
    return torch.is_grad_enabled() and any(isinstance(t, Tensor) and t.requires_grad for t in tensors)


def run_context(param: Tensor, grad: bool) -> contextlib.ExitStack:
    """``no_grad`` unless ``grad``; autocast to the parameters' dtype for a float16/bfloat16 model."""
    stack = contextlib.ExitStack()
    if not grad:
        stack.enter_context(torch.no_grad())
    kind = param.device.type
    if param.dtype in _HALF and not torch.is_autocast_enabled(kind):
        stack.enter_context(torch.autocast(device_type=kind, dtype=param.dtype))
    return stack


def check_device(name: str, t: Tensor, param: Tensor) -> None:
    """Refuse, in one line, an input on another device than the model."""
    if t.device != param.device:
        raise InvalidArgumentError(
            f"{name} is on {t.device}, the model on {param.device}: move it first ({name}.to('{param.device}'))"
        )
