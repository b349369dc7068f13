"""``bench_infer.py``: the FLOP floor of a head's decode.

**How FLOPs are counted** (per query, the work of our fast path, which is the least any implementation of
the head's function needs): the matrix products of the decoding MLP per query, a multiply-add = 2 FLOPs;
per-latent work (the factorised first layer's latent term, LTE's ``coef``/``freq`` and MetaSR's ``G``/``β``
convolutions) is done once per latent pixel in ``prepare`` and not counted; elementwise work (geometry,
Fourier features, cos/sin, ReLU, biases, blend, skip, gathers) is not counted either.

* LIIF: 4 members × 2 × (4·h₁ + Σ hᵢ·hᵢ₊₁ + h_last·3) — the first layer's coordinate/cell inputs only.
* LTE: 4 members × 2 × (D·h₁ + Σ hᵢ·hᵢ₊₁ + h_last·3).
* MetaSR: 2 × (3·h₁ + Σ hᵢ·hᵢ₊₁ + 3·h_last) — the weight MLP's hidden layers and the factorised last layer
  (3,072 at h = 256). Checked against the official computation (``models/misc.py``, liif_spec.md §1.8/§11.3):
  per query it runs the weight MLP 3 → 256 → C·9·3 and ``q_feat (1 × C·9) @ W (C·9 × 3)``, i.e.
  3·256 + 256·1728 + 1728·3 = 448,320 multiply-adds (897 kFLOP). The last layer and the product are linear in
  both the latent's unfolded feature ``u`` and the hidden activation ``t``, so ``pred_r = G_r(u) · t + β_r(u)``
  exactly (``G``, ``β``: 3·256 + 3 values per latent, computed once per latent pixel in ``prepare`` like the
  other heads' latent terms, not counted). What every query needs — its inputs differ per query (cell included,
  and the offsets are not bitwise equal between latents, see ``metasr_groups.py``) — is then ``t`` (3·256) and
  ``G · t`` (3·256): 1,536 multiply-adds, which is the count (the method's least per-query work, not ours;
  counting the official 448 k would put any factorised decode at ~290× "the floor"). Biases and the ReLU
  are not counted, as for the other heads. The fused C kernel (``kernels/csrc/metasr.c``, fp32 CPU inference)
  runs exactly these 1,536 multiply-adds per query. The torch fallback grouped by latent
  (``metasr_groups.py``) runs them per slot of its latent × ``n_max`` layout, the first layer with its bias as
  a 4th input column: 2 × (4·h₁ + … + 3·h_last) = 3,584 per slot, and slots / queries = 1.08 for 100² → 800²
  in 65536-query chunks (latents split between chunks are padded), so its work as run is ~1.26× the count.
* LM-LIIF, LM-LTE, LM-CiaoSR: 4 members × 2 × (the 16-wide render MLP's Σ inᵢ·outᵢ), as ``scripts/bench_lmf.py``.

The floor of a decode = FLOPs per query × queries / the warm fp32 GEMM rate, measured in the same run as the
MLP's own product shape, ``(1024, 256) @ (256, 256)``, in single-threaded blocks on the same worker pool as
the CPU decode (:func:`gemm_rate`); ``fraction of the floor`` = floor / measured decode time (1.0 = at the
GEMM rate). On a shared machine the wall-clock fraction mixes in other processes' load (the GEMM rate and
the decode are measured at different moments), so it is also given in process CPU time: FLOPs / (the GEMM's
FLOP per CPU second) / the decode's CPU seconds — the fraction of the cores' time the decode spends at the
GEMM rate, steady under load.

**The memory (roofline) floor** (:func:`memory_bytes`, :func:`stream_rate`): the bytes a decode must at least
move between DRAM and the core, divided by the single-thread streaming read rate measured in the same run (a
sum over a float32 array far larger than the last-level cache, in process CPU time). Assumed: the queries come
in row-major order of the output grid (as ``make_coord`` and every chunked decode give them), so the latents
one output row touches (≤ 2 latent rows, ≤ 2·w table rows) stay cache-resident while the ~scale output rows that
share them are decoded: each latent's table row is read from DRAM once per decode and never re-read; each
query reads its inputs (2 coordinate + 2 cell floats, as the decode API takes them) and writes its output
(out_dim floats) once; writes counted once (no write-allocate read); weights are cache-resident and not
counted. The per-latent table is what the decode reads per latent in our factorisation (the least any decode
of that form reads; what ``prepare`` computes, not the encoder's features):

* LIIF: the first layer's latent term, h₁ floats (256).
* LTE: ``coef`` and ``freq``, 2·D floats (512), plus the 3 LR pixels of the global skip.
* MetaSR: ``G`` and ``β``, out_dim·(h + 1) floats (771).
* LM-LIIF, LM-CiaoSR, LM-LTE: the packed render table ``[1 + s_i | t'_i]`` (2·16·depth floats; layer 0's latent
  part folded in), LM-LTE also ``coef' | freq'`` (2·16), plus the 3 LR pixels where the head adds the skip.

``memory floor`` = (latents · table bytes + queries · (4 + out_dim) · 4 B) / streaming rate. The bound per
decode is the larger of the FLOP floor and the memory floor; a decode whose memory floor exceeds its FLOP floor
is memory-bound (MetaSR below ×4: its 3 KB row per latent serves only scale² queries). ``max`` assumes the
table stream fully overlaps the arithmetic; one core whose outstanding misses already cap its streaming rate
overlaps little, and then the decode time approaches the sum of the two floors (``fraction of the FLOP floor +
fraction of the memory floor`` near 1; measured for MetaSR at ×2–×3, BENCHMARKS.md).
"""

from __future__ import annotations

import time

import torch
from torch import nn

from liif_sr.models.heads.cpu_pool import run_blocks


def _linear_sizes(mlp: nn.Module) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in mlp.modules() if isinstance(m, nn.Linear)]


def decode_flops(head: nn.Module) -> int:
    """FLOPs per query of ``head``'s decode, counted as the module docstring says."""
    name = type(head).__name__
    render = getattr(head, "render", None)
    if (
        render is not None
    ):  # the latent modulated heads (LM-LIIF, LM-LTE, LM-CiaoSR): the render MLP, 4 members
        return 4 * 2 * sum(i * o for i, o in _linear_sizes(render))
    sizes = _linear_sizes(head.mlp)
    if name == "LIIFHead":
        first_in = sizes[0][0] - head.feat_dim  # coordinate (+ cell) inputs
        macs = first_in * sizes[0][1] + sum(i * o for i, o in sizes[1:])
        return (4 if head.local_ensemble else 1) * 2 * macs
    if name == "LTEHead":
        return 4 * 2 * sum(i * o for i, o in sizes)
    if name == "MetaSRHead":
        hidden = sum(i * o for i, o in sizes[:-1])
        return 2 * (hidden + head.out_dim * sizes[-1][0])
    raise ValueError(f"no FLOP count for {name}")


def gemm_rate(
    device: torch.device, seconds: float = 0.3, rows: int = 1024, width: int = 256
) -> tuple[float, float]:
    """Warm fp32 FLOP/s of ``(rows, width) @ (width, width)`` products: on a CPU in blocks on the worker pool
    (as the heads' CPU decode runs), on a GPU one large product. Returns (FLOP per wall second, FLOP per
    process CPU second; on a GPU the same number twice)."""
    if device.type != "cpu":
        a = torch.randn(16 * rows, width, device=device)
        b = torch.randn(width, width, device=device)
        a @ b
        torch.cuda.synchronize(device)
        t0, n = time.perf_counter(), 0
        while time.perf_counter() - t0 < seconds:
            for _ in range(10):
                a @ b
            torch.cuda.synchronize(device)
            n += 10
        rate = 2 * a.shape[0] * width * width * n / (time.perf_counter() - t0)
        return rate, rate
    threads = torch.get_num_threads()
    a = [torch.randn(rows, width) for _ in range(threads)]
    b = torch.randn(width, width)
    out = [torch.empty(rows, width) for _ in range(threads)]
    reps = 20

    def work(i: int) -> None:
        for _ in range(reps):
            torch.mm(a[i], b, out=out[i])

    run_blocks(work, range(threads))  # warm-up
    t0, c0, n = time.perf_counter(), time.process_time(), 0
    while time.perf_counter() - t0 < seconds:
        run_blocks(work, range(threads))
        n += 1
    flop = 2 * rows * width * width * reps * threads * n
    return flop / (time.perf_counter() - t0), flop / (time.process_time() - c0)


def _out_dim(head: nn.Module) -> int:
    render = getattr(head, "render", None)
    if render is not None:
        return int(render.out_dim)
    if hasattr(head, "out_dim"):
        return int(head.out_dim)
    return _linear_sizes(head.mlp)[-1][1]


def table_floats(head: nn.Module) -> int:
    """Floats per latent that ``head``'s decode reads (the module docstring's per-latent table)."""
    name = type(head).__name__
    render = getattr(head, "render", None)
    if render is not None:
        code = 2 * render.hidden_dim if name == "LMLTEHead" else 0
        skip = name == "LMLTEHead" or (name == "LMCiaoSRHead" and getattr(head, "lr_skip", "") != "never")
        return render.mod_dim + code + (3 if skip else 0)
    sizes = _linear_sizes(head.mlp)
    if name == "LIIFHead":
        return sizes[0][1]
    if name == "LTEHead":
        return 2 * sizes[0][0] + 3
    if name == "MetaSRHead":
        return head.out_dim * (sizes[-1][0] + 1)
    raise ValueError(f"no table size for {name}")


def memory_bytes(head: nn.Module, latents: int, queries: int) -> int:
    """The least bytes a decode of ``queries`` from ``latents`` latent pixels moves (module docstring)."""
    return 4 * (latents * table_floats(head) + queries * (4 + _out_dim(head)))


def stream_rate(nbytes: int = 256 << 20, repeats: int = 3) -> float:
    """Single-thread streaming read rate, bytes per process CPU second: the best of ``repeats`` sums over a
    float32 array of ``nbytes`` (far larger than the last-level cache at the default)."""
    with torch.inference_mode():
        a = torch.ones(max(1, nbytes // 4))
        a.sum()  # touch the pages
        best = 0.0
        for _ in range(repeats):
            c0 = time.process_time()
            a.sum()
            best = max(best, a.numel() * 4 / max(time.process_time() - c0, 1e-9))
    return best
