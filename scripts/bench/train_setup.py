"""``bench_train.py``: the benchmarked models and variants, the result row, and the two data pipelines
(DataLoader workers with the CPU reference sampler, or the device sampler)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from liif_sr.data.gpu_sampler import DeviceSampler
from liif_sr.data.sampling import random_scale_sample
from liif_sr.models import RDN, EDSRBaseline

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
    host_memory: bool = False  # model.speed.reuse_host_memory (CPU; process-wide, set around each step)

    def describe(self) -> str:
        parts = [f"{self.head} head", "bf16 autocast" if self.bf16 else "fp32"]
        parts += ["channels_last"] * self.channels_last + ["fused Adam"] * self.fused_adam
        parts += ["cuDNN benchmark"] * self.cudnn_benchmark + ["host-memory reuse"] * self.host_memory
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
    cpu_ms: float = float("nan")  # process CPU time per step (all threads): the work, less the waiting
    speedup: float = float("nan")
    cpu_speedup: float = float("nan")  # the reference's CPU ms / this row's
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
