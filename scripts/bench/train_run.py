"""``bench_train.py``: the benchmark loop over models and variants (model only, end to end, data only)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator

import torch

from bench.train_setup import (
    MODELS,
    PREFETCH,
    Batch,
    Row,
    cpu_loader_batches,
    device_sampler_batches,
    load_images,
)
from bench.train_step import Case, Step, count_syncs, device_label, loss_parity, sync, time_window, variants
from liif_sr.data.gpu_sampler import DeviceSampler


def loadavg() -> str:
    """The 1/5/15-minute load averages (``/proc/loadavg``), or "–" where there is none."""
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "–"


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
        "loadavg": loadavg(),
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
        sec, loss, cpu = time_window(step, feeds[case.feed], device, args.steps)
        case.times.append(sec)
        case.cpu_times.append(cpu)
        case.loss = float(loss)
        print(
            f"  {MODELS[case.model][0]:20s} {case.variant.name:15s} {case.data:22s} {sec * 1e3:9.1f} ms/step (CPU {cpu * 1e3:.0f} ms)",
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
            row.cpu_ms = statistics.median(case.cpu_times) * 1e3
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
            if ref and ref.cpu_times:
                row.cpu_speedup = statistics.median(ref.cpu_times) / statistics.median(case.cpu_times)
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
    meta["loadavg_end"] = loadavg()
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
