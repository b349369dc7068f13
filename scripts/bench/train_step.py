"""``bench_train.py``: one timed training step per variant, timing windows, host-device sync counting and the
fp32-reference vs fast-path loss parity."""

from __future__ import annotations

import platform
import statistics
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from bench.train_setup import MODELS, Batch, Variant
from liif_sr.models import ImplicitSR, LIIFHead
from liif_sr.training.speed import CompiledOrEager, channels_last_input, reuse_host_memory


# ------------------------------------------------------------------------------------------------ model
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Step:
    """A training step (forward, L1, backward, Adam) with a variant's options.

    ``step(batch)`` returns the detached loss (no host sync); ``reset()`` puts back the initial weights
    (in place, so a compiled graph stays valid) and empties the Adam state; ``notes()`` reports a compile
    fallback.
    """

    def __init__(self, model: str, v: Variant, device: torch.device, compile_mode: str | None) -> None:
        _, encoder_fn, hidden = MODELS[model]
        torch.manual_seed(0)  # the same initial weights for every variant of a model (heads: same params)
        encoder = encoder_fn()
        net = ImplicitSR(
            encoder, LIIFHead(in_channels=encoder.out_dim, hidden_list=hidden, fast=v.head == "fast")
        ).to(device)
        if v.channels_last:
            net.encoder.to(memory_format=torch.channels_last)
        self.v, self.device, self.net = v, device, net
        self.initial = [p.detach().clone() for p in net.parameters()]
        self.opt = torch.optim.Adam(net.parameters(), lr=1e-4, **({"fused": True} if v.fused_adam else {}))
        self.forward = CompiledOrEager(net, f"{model}/{v.name}", mode=compile_mode) if v.compile else net

    def __call__(self, batch: Batch) -> Tensor:
        v = self.v
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = v.cudnn_benchmark
        else:
            reuse_host_memory(v.host_memory)
        inp = channels_last_input(batch["inp"]) if v.channels_last else batch["inp"]
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=v.bf16):
            pred = self.forward(inp, batch["coord"], batch["cell"])
            loss = F.l1_loss(pred, (batch["gt"] - 0.5) / 0.5)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return loss.detach()

    def reset(self) -> None:
        with torch.no_grad():
            for p, p0 in zip(self.net.parameters(), self.initial):
                p.copy_(p0)
        self.opt.state.clear()  # Adam moments and step counts start again at the next step
        self.opt.zero_grad(set_to_none=True)

    def notes(self) -> list[str]:
        if self.forward is None:  # released
            return self.saved_notes
        if self.v.compile and isinstance(self.forward, CompiledOrEager) and not self.forward.active:
            return ["compile failed: ran eager"]
        return []

    def release(self) -> None:
        """Free the model and optimizer (keeps the notes)."""
        self.saved_notes = self.notes()
        self.net = self.opt = self.forward = self.initial = None


def time_window(
    step, batches: Iterator[Batch], device: torch.device, steps: int
) -> tuple[float, Tensor, float]:
    """Mean wall seconds per step over ``steps`` consecutive steps (device synchronised at both ends), the
    last loss, and the mean process CPU seconds per step."""
    sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    loss = torch.zeros(())
    for _ in range(steps):
        loss = step(next(batches))
    sync(device)
    return (time.perf_counter() - t0) / steps, loss, (time.process_time() - c0) / steps


def count_syncs(
    step, batches: Iterator[Batch], device: torch.device, steps: int = 2, with_data: bool = False
) -> float:
    """Host-device synchronisations per step reported by ``torch.cuda.set_sync_debug_mode``.

    ``with_data``: the batch is fetched inside the counted window (end-to-end feeds: the device sampler's
    kernels and the host-to-device copy of a CPU-worker batch are part of the step).
    """
    if device.type != "cuda":
        return float("nan")
    batch_list = [] if with_data else [next(batches) for _ in range(steps)]
    sync(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for i in range(steps):
                step(next(batches) if with_data else batch_list[i])
        finally:
            torch.cuda.set_sync_debug_mode("default")
    sync(device)
    return sum("synchroniz" in str(w.message) for w in caught) / steps


# ------------------------------------------------------------------------------------------------ main
def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU {cpu}, {torch.get_num_threads()} threads"


def variants(device: torch.device, args) -> list[Variant]:
    cuda = device.type == "cuda"
    bf16 = cuda or args.cpu_bf16
    host = not cuda  # model.speed.reuse_host_memory acts on the CPU only
    out = [
        Variant("fp32 ref", "plain", False, False, False),  # the official step
        Variant("fast head fp32", "fast", False, False, False),
        # on the CPU without --cpu-bf16: the default training step (model.speed defaults, fp32)
        Variant("fast", "fast", bf16, True, True, cudnn_benchmark=cuda, host_memory=host),
    ]
    if args.compile:
        out.append(
            Variant(
                "fast+compile", "fast", bf16, True, True, compile=True, cudnn_benchmark=cuda, host_memory=host
            )
        )
    return out


@dataclass
class Case:
    model: str
    variant: Variant
    data: str
    feed: str  # synthetic | cpu | device
    peak_mib: float = float("nan")
    syncs: float = float("nan")
    times: list[float] = field(default_factory=list)
    loss: float = float("nan")
    warmup_s: float = float("nan")
    cpu_times: list[float] = field(default_factory=list)


def loss_parity(ref: Step, fast: Step, batches: list[Batch], device: torch.device, tol: float) -> dict:
    """Train ``ref`` and ``fast`` from their (identical) initial weights on the same ``batches``."""
    curves, secs = {}, {}
    for name, step in (("ref", ref), ("fast", fast)):
        step.reset()
        sync(device)
        t0 = time.perf_counter()
        losses = torch.stack([step(b) for b in batches])  # no per-step .item(): no host sync
        sync(device)
        secs[name] = time.perf_counter() - t0
        curves[name] = [float(x) for x in losses.float().cpu()]
    n = len(batches)
    tail = max(1, n // 3)
    r, f = curves["ref"], curves["fast"]
    mean_r, mean_f = statistics.fmean(r[-tail:]), statistics.fmean(f[-tail:])
    rel = [abs(a - b) / max(abs(a), 1e-12) for a, b in zip(r, f)]
    noise = statistics.pstdev(r[-tail:]) if tail > 1 else float("nan")
    out = {
        "steps": n,
        "ref_variant": ref.v.name,
        "fast_variant": fast.v.name,
        "tail_steps": tail,
        "ref_tail_mean": mean_r,
        "fast_tail_mean": mean_f,
        "tail_rel_diff": abs(mean_f - mean_r) / max(abs(mean_r), 1e-12),
        "ref_tail_batch_std": noise,  # batch-to-batch spread of the loss, for scale
        "first_step_rel_diff": rel[0],
        "median_step_rel_diff": statistics.median(rel),
        "max_step_rel_diff": max(rel),
        "ref_ms_per_step": secs["ref"] / n * 1e3,
        "fast_ms_per_step": secs["fast"] / n * 1e3,
        "tol": tol,
        "ref_curve": r,
        "fast_curve": f,
    }
    out["ok"] = out["tail_rel_diff"] <= tol
    print(
        f"  loss parity over {n} steps: last {tail} mean ref {mean_r:.5f} fast {mean_f:.5f} "
        f"(rel diff {out['tail_rel_diff']:.2e}, tol {tol:g}): {'ok' if out['ok'] else 'MISMATCH'}",
        flush=True,
    )
    return out
