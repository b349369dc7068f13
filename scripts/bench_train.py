#!/usr/bin/env python
"""Training-throughput benchmark: the faithful fp32 reference vs the fast path (``make bench-train``).

For each model (paper sizes: EDSR-baseline-LIIF, RDN-LIIF; batch 16, 48² LR, 2304 queries, Adam 1e-4, L1):

* **model only** -- a step (forward, L1, backward, Adam) on batches already on the device, for each variant:
  ``fp32 ref`` (plain head, fp32: the official algorithm), ``fast head fp32`` (factorised head only),
  ``fast`` (fast head, bf16 autocast on CUDA, channels_last encoder, fused Adam on CUDA) and, with
  ``--compile``, ``fast+compile``;
* **end to end** -- the same steps fed by the data pipeline: DataLoader workers running the CPU reference
  sampler (PIL bicubic), or the device sampler (``data.sampler=device``);
* **data only** -- samples/s of each pipeline alone;
* **loss parity** (``--parity-steps N``) -- the fp32 reference and the fast path trained for N steps from
  the same initial weights on the same batches (pre-built by a seeded device sampler): their loss curves
  must agree within bf16 noise (mean over the last third within ``--parity-tol``, relative).

Each variant is built once per model (one compilation) and reused for the parity run (weights and Adam
state reset in place first), the model-only and the end-to-end timing. ``--json`` is rewritten after every
model, so a run killed by a timeout keeps what it finished.

It prints Markdown tables (device name, ms/step, samples/s, speed-up over the fp32 reference measured in
the same run, peak CUDA memory, host-device syncs per step) and can write them into ``BENCHMARKS.md``
(``--markdown``: the ``## Training`` section, one ``###`` subsection per device, other sections kept).

Import-light: torch and liif_sr only (no Lightning, no Hydra), so it runs on a bare GPU box::

    PYTHONPATH=src python scripts/bench_train.py                       # CUDA: edsr + rdn, full
    python scripts/bench_train.py --quick --models edsr                # CPU: a few minutes
    python scripts/bench_train.py --device cpu --models edsr-small,rdn-small --batch 2 --q 64 \
        --steps 1 --windows 1 --parity-steps 4                        # CPU smoke run: seconds
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from liif_sr.data.gpu_sampler import DeviceSampler
from liif_sr.data.sampling import random_scale_sample
from liif_sr.models import RDN, EDSRBaseline, ImplicitSR, LIIFHead
from liif_sr.training.speed import CompiledOrEager, channels_last_input

Batch = dict[str, Tensor]

MODELS: dict[str, tuple[str, Callable[[], torch.nn.Module], list[int]]] = {
    "edsr": ("EDSR-baseline-LIIF", lambda: EDSRBaseline(), [256] * 4),
    "rdn": ("RDN-LIIF", lambda: RDN(), [256] * 4),
    # a reduced model for smoke tests of this script
    "edsr-small": ("EDSR-small-LIIF", lambda: EDSRBaseline(n_resblocks=2, n_feats=16), [32, 32]),
    "rdn-small": ("RDN-small-LIIF", lambda: RDN(G0=16, D=2, C=2, G=8), [32, 32]),
}

PREFETCH = 4  # DataLoader prefetch_factor: batches queued per worker
SKIMAGE_TRAIN = (
    "astronaut",
    "rocket",
    "immunohistochemistry",
    "motorcycle_left",
    "motorcycle_right",
    "retina",
)


@dataclass(frozen=True)
class Variant:
    name: str
    head: str  # plain | fast
    bf16: bool
    channels_last: bool
    fused_adam: bool
    compile: bool = False
    cudnn_benchmark: bool = False  # as trainer=gpu_speed (benchmark: true); set around each step

    def describe(self) -> str:
        parts = [f"{self.head} head", "bf16 autocast" if self.bf16 else "fp32"]
        parts += ["channels_last"] * self.channels_last + ["fused Adam"] * self.fused_adam
        parts += ["cuDNN benchmark"] * self.cudnn_benchmark
        return ", ".join(parts + ["torch.compile"] * self.compile)


@dataclass
class Row:
    model: str
    variant: str
    config: str
    data: str
    ms_per_step: float
    samples_per_s: float = float("nan")
    min_ms: float = float("nan")
    speedup: float = float("nan")
    peak_mib: float = float("nan")
    syncs_per_step: float = float("nan")
    loss: float = float("nan")
    warmup_s: float = float("nan")  # build + warm-up steps (compilation, cuDNN autotuning) of this variant
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------ data
def load_images(sources: list[str] | None, min_size: int) -> tuple[list[Tensor], str]:
    """uint8 (3, H, W) HR images: ``--data`` sources, else scikit-image photos, else synthetic noise."""
    from liif_sr.data.sources import expand_sources, load_source_image

    if sources:
        items = expand_sources(sources)
        return [load_source_image(i) for i in items], f"{len(items)} images from {', '.join(sources)}"
    try:
        imgs = [load_source_image(f"skimage:{n}") for n in SKIMAGE_TRAIN]
        return imgs, f"{len(imgs)} scikit-image photos"
    except Exception as exc:  # scikit-image missing on the box
        gen = torch.Generator().manual_seed(0)
        imgs = [torch.randint(0, 256, (3, 512, 640), dtype=torch.uint8, generator=gen) for _ in range(8)]
        return imgs, f"8 synthetic 512x640 images (no scikit-image: {type(exc).__name__})"


class RandomScaleSamples(Dataset):
    """The CPU reference pipeline: ``random_scale_sample`` (PIL bicubic) per item, as the datamodule."""

    def __init__(self, images: list[Tensor], length: int, **kwargs) -> None:
        self.images, self.length, self.kwargs = images, length, kwargs

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> Batch:
        return random_scale_sample(self.images[i % len(self.images)], **self.kwargs)


def cpu_loader_batches(images, args, device: torch.device, workers: int) -> Iterator[Batch]:
    ds = RandomScaleSamples(images, 10**9, inp_size=args.inp, scale_max=args.scale_max, sample_q=args.q)
    loader = DataLoader(
        ds,
        batch_size=args.batch,
        shuffle=False,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        drop_last=True,
        persistent_workers=workers > 0,
        prefetch_factor=PREFETCH if workers > 0 else None,
    )
    for batch in loader:
        yield {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def device_sampler_batches(sampler: DeviceSampler, batch: int) -> Iterator[Batch]:
    n = len(sampler)
    while True:
        yield sampler(torch.randint(0, n, (batch,), device=sampler.device))


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


def time_window(step, batches: Iterator[Batch], device: torch.device, steps: int) -> tuple[float, Tensor]:
    """Mean seconds per step over ``steps`` consecutive steps (device synchronised at both ends)."""
    sync(device)
    t0 = time.perf_counter()
    loss = torch.zeros(())
    for _ in range(steps):
        loss = step(next(batches))
    sync(device)
    return (time.perf_counter() - t0) / steps, loss


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
    out = [
        Variant("fp32 ref", "plain", False, False, False),
        Variant("fast head fp32", "fast", False, False, False),
        Variant("fast", "fast", bf16, True, cuda, cudnn_benchmark=cuda),
    ]
    if args.compile:
        out.append(Variant("fast+compile", "fast", bf16, True, cuda, compile=True, cudnn_benchmark=cuda))
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


def run(
    args, emit: Callable[[list[Row], dict, dict], None] | None = None
) -> tuple[list[Row], list[Row], dict]:
    """Per model: build every variant once (with its warm-up: compilation, cuDNN autotuning; peak memory;
    syncs per step), the loss-parity run, then the model-only cases timed in interleaved rounds (drifting
    clocks or load hit every variant alike) and the end-to-end cases one after the other (a data pipeline
    left running in the background would hand the next window a full prefetch queue). ``emit(rows, meta,
    parity)`` is called after every model with everything measured so far."""
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    t_start = time.perf_counter()
    skipped: list[str] = []

    def over(what: str) -> bool:
        """``--time-budget``: skip ``what`` (noted in the output) once the budget is spent."""
        if args.time_budget and time.perf_counter() - t_start > args.time_budget:
            skipped.append(what)
            print(f"  time budget of {args.time_budget:g} s spent: skipping {what}", flush=True)
            return True
        return False

    images, image_note = load_images(args.data, args.inp)
    print(f"device: {device_label(device)}; torch {torch.__version__}; {image_note}", flush=True)
    sampler = DeviceSampler(
        images, inp_size=args.inp, scale_max=args.scale_max, sample_q=args.q, device=device, seed=0
    )
    fixed = [sampler(torch.randint(0, len(images), (args.batch,), device=device)) for _ in range(4)]

    def synthetic() -> Iterator[Batch]:  # rotate among 4 pre-built batches already on the device
        i = 0
        while True:
            yield fixed[i % 4]
            i += 1

    feeds: dict[str, Iterator[Batch]] = {"synthetic": synthetic()}
    if not args.no_e2e:
        feeds["cpu"] = cpu_loader_batches(images, args, device, args.workers)
        feeds["device"] = device_sampler_batches(sampler, args.batch)
    meta = {
        "device": device_label(device),
        "torch": torch.__version__,
        "images": image_note,
        "command": " ".join(["python scripts/bench_train.py", *args.argv]),
        "date": time.strftime("%Y-%m-%d"),
        "batch": args.batch,
        "inp": args.inp,
        "q": args.q,
        "steps": args.steps,
        "windows": args.windows,
        "warmup": args.warmup,
        "time_budget": args.time_budget,
        "tf32": {
            "matmul": torch.backends.cuda.matmul.allow_tf32,
            "cudnn": torch.backends.cudnn.allow_tf32,
        },
    }

    def timed(step: Step, case: Case) -> None:
        sec, loss = time_window(step, feeds[case.feed], device, args.steps)
        case.times.append(sec)
        case.loss = float(loss)
        print(
            f"  {MODELS[case.model][0]:20s} {case.variant.name:15s} {case.data:22s} {sec * 1e3:9.1f} ms/step",
            flush=True,
        )

    def rows_of(cases: list[Case], built: dict[tuple[str, str], Step]) -> list[Row]:
        rows = []
        for case in cases:
            if not case.times:
                continue
            sec = statistics.median(case.times)
            row = Row(MODELS[case.model][0], case.variant.name, case.variant.describe(), case.data, sec * 1e3)
            row.samples_per_s = args.batch / sec
            row.min_ms = min(case.times) * 1e3
            row.peak_mib, row.syncs_per_step, row.loss = case.peak_mib, case.syncs, case.loss
            row.warmup_s = case.warmup_s
            row.notes = built[(case.model, case.variant.name)].notes()
            ref = next(
                (
                    c
                    for c in cases
                    if c.model == case.model
                    and c.variant.name == "fp32 ref"
                    and (c.feed == "synthetic") == (case.feed == "synthetic")
                    and c.times
                ),
                None,
            )
            row.speedup = statistics.median(ref.times) / sec if ref else float("nan")
            rows.append(row)
        return rows

    cases: list[Case] = []
    built: dict[tuple[str, str], Step] = {}
    parity: dict[str, dict] = {}
    meta["skipped"] = skipped
    for model in args.models:
        if over(f"{MODELS[model][0]} (all rows)"):
            continue
        vs = variants(device, args)
        steps: dict[str, Step] = {}
        model_only = [Case(model, v, "synthetic on device", "synthetic") for v in vs]
        for case in model_only:  # build + warm up each variant once; peak memory of its own
            base = torch.cuda.memory_allocated(device) if cuda else 0
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            t0 = time.perf_counter()
            step = steps[case.variant.name] = Step(model, case.variant, device, args.compile_mode)
            built[(model, case.variant.name)] = step
            for _ in range(max(1, args.warmup + (args.compile_warmup if case.variant.compile else 0))):
                step(next(feeds["synthetic"]))
            sync(device)
            case.warmup_s = time.perf_counter() - t0
            if cuda:
                case.peak_mib = (torch.cuda.max_memory_allocated(device) - base) / 2**20
            case.syncs = count_syncs(step, feeds["synthetic"], device)
        cases += model_only
        fast_path = vs[-1]  # the whole fast path: fast (+compile with --compile)
        if args.parity_steps and not over(f"{MODELS[model][0]} loss parity"):
            gen_sampler = DeviceSampler(
                images, inp_size=args.inp, scale_max=args.scale_max, sample_q=args.q, device=device, seed=1
            )
            g = torch.Generator().manual_seed(1)
            batches = [
                gen_sampler(torch.randint(0, len(images), (args.batch,), generator=g).to(device))
                for _ in range(args.parity_steps)
            ]
            name = MODELS[model][0]
            parity[name] = loss_parity(
                steps["fp32 ref"], steps[fast_path.name], batches, device, args.parity_tol
            )
            del batches, gen_sampler
        for _ in range(args.windows):
            for case in model_only:
                timed(steps[case.variant.name], case)
        if not args.no_e2e and not over(f"{MODELS[model][0]} end-to-end rows"):
            e2e = [Case(model, vs[0], f"CPU workers x{args.workers}", "cpu")]
            e2e += [Case(model, fast_path, f"CPU workers x{args.workers}", "cpu")]
            e2e += [Case(model, fast_path, "device sampler", "device")]
            for case in e2e:
                step = steps[case.variant.name]
                if case.feed == "cpu":  # drop what the workers queued while nobody consumed: steady state
                    for _ in range(args.workers * PREFETCH):
                        next(feeds["cpu"])
                for _ in range(max(1, args.warmup)):
                    step(next(feeds[case.feed]))
                case.syncs = count_syncs(step, feeds[case.feed], device, with_data=True)
                for _ in range(args.windows):
                    timed(step, case)
            cases += e2e
        for step in steps.values():  # free the models before the next one
            step.release()
        del steps, step
        if cuda:
            torch.cuda.empty_cache()
        if emit:
            emit(rows_of(cases, built), meta, parity)

    rows = rows_of(cases, built)
    feeds.clear()  # stops the DataLoader workers
    data_rows = [] if args.no_data or over("data-only rows") else bench_data(images, sampler, args, device)
    meta["parity"] = parity
    return rows, data_rows, meta


def bench_data(images, sampler: DeviceSampler, args, device: torch.device) -> list[Row]:
    """Samples/s of the data pipelines alone (no model)."""
    out = []
    for workers in sorted({0, args.workers}):
        n_batches = max(2, args.data_batches, 4 * workers * PREFETCH)  # well past the queue depth
        it = cpu_loader_batches(images, args, device, workers)
        for _ in range(1 + workers * PREFETCH):  # worker start-up, then drain the initial queue
            next(it)
        sync(device)
        t0 = time.perf_counter()
        for _ in range(n_batches):
            next(it)
        sync(device)
        sec = (time.perf_counter() - t0) / n_batches
        out.append(
            Row(
                "data only", "CPU reference (PIL)", "", f"CPU workers x{workers}", sec * 1e3, args.batch / sec
            )
        )
        del it
    n_batches = max(2, args.data_batches)
    batches = device_sampler_batches(sampler, args.batch)
    next(batches)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(n_batches):
        next(batches)
    sync(device)
    sec = (time.perf_counter() - t0) / n_batches
    out.append(Row("data only", "device sampler", "", str(device), sec * 1e3, args.batch / sec))
    for r in out:
        print(
            f"  data: {r.variant:20s} {r.data:16s} {r.ms_per_step:8.1f} ms/batch {r.samples_per_s:9.1f} samples/s"
        )
    return out


def fmt(x: float, digits: int = 1) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def markdown(rows: list[Row], data_rows: list[Row], meta: dict) -> str:
    lines = [
        f"### {meta['device']}",
        "",
        f"{meta['date']}, torch {meta['torch']}; batch {meta['batch']}, LR {meta['inp']}², {meta['q']} queries, "
        f"Adam 1e-4, L1; {meta['images']}. ms/step: median over {meta['windows']} timing window(s) of "
        f"{meta['steps']} step(s), after {meta['warmup']} warm-up step(s); best: the fastest window. "
        f"`{meta['command']}`",
        "",
        "| model | variant | data | ms/step | best ms/step | samples/s | speed-up vs fp32 ref | peak MiB | syncs/step |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        variant = f"{r.variant} ({r.config})" + (f" — {'; '.join(r.notes)}" if r.notes else "")
        lines.append(
            f"| {r.model} | {variant} | {r.data} | {fmt(r.ms_per_step)} | {fmt(r.min_ms)} | {fmt(r.samples_per_s)} | "
            f"{fmt(r.speedup, 2)}× | {fmt(r.peak_mib, 0)} | {fmt(r.syncs_per_step, 1)} |"
        )
    if data_rows:
        lines += ["", "| data pipeline alone | where | ms/batch | samples/s |", "|---|---|---:|---:|"]
        lines += [
            f"| {r.variant} | {r.data} | {fmt(r.ms_per_step)} | {fmt(r.samples_per_s)} |" for r in data_rows
        ]
    parity = meta.get("parity") or {}
    if parity:
        lines += [
            "",
            "| loss parity | reference | fast path | steps | mean loss, last third: ref | fast | rel. diff "
            "| first-step rel. diff | median step rel. diff | within tol. |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for name, p in parity.items():
            lines.append(
                f"| {name} | {p['ref_variant']} | {p['fast_variant']} | {p['steps']} | {p['ref_tail_mean']:.5f} "
                f"| {p['fast_tail_mean']:.5f} | {p['tail_rel_diff']:.2e} | {p['first_step_rel_diff']:.2e} "
                f"| {p['median_step_rel_diff']:.2e} | {'yes' if p['ok'] else '**no**'} (≤ {p['tol']:g}) |"
            )
    lines += [
        "",
        "Speed-ups compare with the fp32 reference of the same model fed the same way (model-only rows with "
        "the model-only reference, end-to-end rows with the reference on CPU workers), measured in this run.",
    ]
    if parity:
        lines.append(
            "Loss parity: both trained from the same initial weights on the same pre-built batches (seeded "
            "device sampler); rel. diff = |mean fast − mean ref| / mean ref over the last third of the steps."
        )
    if meta.get("skipped"):
        lines.append(
            f"**Skipped (--time-budget {meta['time_budget']:g} s spent):** {'; '.join(meta['skipped'])}."
        )
    tf32 = meta.get("tf32")
    if tf32:
        lines.append(
            f"TF32 (PyTorch defaults, unchanged): matmul {tf32['matmul']}, cuDNN {tf32['cudnn']}; cuDNN "
            "benchmark on for the fast variants only (as `trainer=gpu_speed`)."
        )
    return "\n".join(lines) + "\n"


def update_markdown(path: Path, subsection: str, preamble: str) -> None:
    """Put ``subsection`` (starting ``### <device>``) into the ``## Training`` section of ``path``.

    A subsection for the same device is replaced; other subsections and other ``##`` sections are kept.
    """
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "## Training"), None)
    if start is None:
        body = ["## Training", "", *preamble.splitlines(), ""]
        end = len(lines)
        lines = [*lines, ""] if lines and lines[-1].strip() else lines
        start, end = len(lines), len(lines)
        section = body
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        section = lines[start:end]
    head = subsection.splitlines()[0]
    s0 = next((i for i, line in enumerate(section) if line.strip() == head.strip()), None)
    new = subsection.rstrip("\n").splitlines()
    if s0 is None:
        section = [*section, *([""] if section and section[-1].strip() else []), *new, ""]
    else:
        s1 = next((i for i in range(s0 + 1, len(section)) if section[i].startswith("### ")), len(section))
        section = [*section[:s0], *new, "", *section[s1:]]
    out = [*lines[:start], *section, *lines[end:]]
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("\n".join(out).rstrip("\n") + "\n")
    os.replace(tmp, path)


PREAMBLE = (
    "`make bench-train` (`scripts/bench_train.py`): one training step = forward, L1, backward, Adam on a batch "
    "of 16 48² LR crops with 2304 queries (the paper's). `fp32 ref` is the official algorithm (plain head) in "
    "fp32; `fast` is the fast path of `docs/training_speed.md`. One subsection per device."
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    cuda = torch.cuda.is_available()
    p.add_argument("--device", default="cuda" if cuda else "cpu")
    p.add_argument(
        "--models",
        default=None,
        help="comma list of edsr, rdn, edsr-small (default: edsr,rdn on CUDA, edsr on CPU)",
    )
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--inp", type=int, default=48, help="LR crop size")
    p.add_argument("--q", type=int, default=2304, help="queries per sample")
    p.add_argument("--scale-max", type=float, default=4.0)
    p.add_argument("--steps", type=int, default=None, help="timed steps per window (CUDA 25, CPU 3)")
    p.add_argument(
        "--windows", type=int, default=None, help="timing windows, median reported (CUDA 3, CPU 1)"
    )
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (CUDA 5, CPU 1)")
    p.add_argument("--compile-warmup", type=int, default=3, help="extra warm-up steps for compiled variants")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (CUDA 8, CPU 2)")
    p.add_argument("--data-batches", type=int, default=None, help="batches timed for the data-only rows")
    p.add_argument("--compile", action="store_true", help="add the fast+compile variant")
    p.add_argument("--compile-mode", default=None, help="torch.compile mode (default, max-autotune, ...)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--cpu-bf16", action="store_true", help="bf16 autocast in the fast variant on the CPU too")
    p.add_argument("--no-e2e", action="store_true", help="skip the end-to-end rows")
    p.add_argument("--no-data", action="store_true", help="skip the data-only rows")
    p.add_argument("--quick", action="store_true", help="fewest steps (CPU smoke run)")
    p.add_argument(
        "--time-budget",
        type=float,
        default=0,
        help="seconds: once spent, skip the remaining phases (noted) instead of being killed by a timeout",
    )
    p.add_argument(
        "--parity-steps",
        type=int,
        default=0,
        help="loss-parity run: steps of fp32 ref vs the fast path (0: off)",
    )
    p.add_argument(
        "--parity-tol",
        type=float,
        default=0.02,
        help="parity tolerance: relative diff of the last-third means",
    )
    p.add_argument(
        "--data", nargs="*", default=None, help="HR image folders/files (default: scikit-image photos)"
    )
    p.add_argument("--json", type=Path, default=None, help="write all numbers as JSON")
    p.add_argument(
        "--markdown", type=Path, default=None, help="update the '## Training' section of this file"
    )
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    gpu = args.device.startswith("cuda")
    args.models = (args.models or ("edsr,rdn" if gpu else "edsr")).split(",")
    for m in args.models:
        if m not in MODELS:
            p.error(f"unknown model {m!r}; choose from {', '.join(MODELS)}")
    defaults = {"steps": 20 if gpu else 1, "windows": 5 if gpu else 3, "warmup": 5 if gpu else 1}
    if args.quick:
        defaults = {"steps": 5 if gpu else 1, "windows": 2, "warmup": 2 if gpu else 1}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.workers is None:
        args.workers = 8 if gpu else 2
    if args.data_batches is None:
        args.data_batches = 50 if gpu else 5
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    def write_json(rows: list[Row], data_rows: list[Row], meta: dict, complete: bool) -> None:
        if args.json:
            doc = {
                "complete": complete,
                "meta": meta,
                "rows": [asdict(r) for r in rows],
                "data": [asdict(r) for r in data_rows],
            }
            tmp = args.json.with_suffix(".tmp")
            tmp.write_text(json.dumps(doc, indent=1))
            os.replace(tmp, args.json)

    def emit(rows: list[Row], meta: dict, parity: dict) -> None:
        write_json(rows, [], {**meta, "parity": parity}, complete=False)

    rows, data_rows, meta = run(args, emit)
    md = markdown(rows, data_rows, meta)
    print()
    print(md)
    write_json(rows, data_rows, meta, complete=True)
    if args.markdown:
        update_markdown(args.markdown, md, PREAMBLE)
        print(f"wrote the '## Training' section of {args.markdown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
