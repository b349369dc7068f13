"""Test-only LTE and MetaSR heads for the precision bound (issue 21): fine-tuned on the shipped LIIF encoder.

No trained LTE/MetaSR weights exist offline, and random weights say nothing about a PSNR bound. This script
trains a head of each kind on top of the shipped EDSR-baseline-LIIF encoder (frozen) for a bounded time on
real images (T91 + BSDS400: random scale in [1, 4], 48² LR crops, L1), so that it renders real images well
above bicubic. The heads are written as ``tests/fixtures/precision_heads/<head>.safetensors`` (the head's
weights only, its config in the metadata; :func:`load_head_model` rebuilds the model on the shipped encoder).

    python scripts/precision_heads.py --head lte --minutes 9 --batch 6 --data ../shared/data/train
    python scripts/precision_heads.py --head metasr --minutes 9 --batch 6 --data ../shared/data/train
    cp tests/fixtures/precision_heads/metasr.safetensors /tmp/metasr_1.safetensors    # then continue it:
    python scripts/precision_heads.py --head metasr --minutes 9 --batch 6 --lr 1e-4 --init /tmp/metasr_1.safetensors \
        --seed 1 --data ../shared/data/train
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "precision_heads"
DATA = ROOT.parent / "shared" / "data" / "train"


def load_head_model(path: Path):  # noqa: ANN201 (ImplicitSR)
    """The shipped EDSR-baseline-LIIF encoder with the head stored in ``path`` (this script's output)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from liif_sr import load_model
    from liif_sr.models.implicit_sr import ImplicitSR
    from liif_sr.models.registry import head_class

    with safe_open(str(path), "pt") as f:
        cfg = json.loads(f.metadata()["head"])
    base = load_model("edsr-baseline-liif")
    name = cfg.pop("name")
    head = head_class(name)(in_channels=base.encoder.out_dim, **cfg)
    head.load_state_dict(load_file(str(path)))
    return ImplicitSR(base.encoder, head).eval()


def _images(data: Path, limit: int, rng: random.Random) -> list[torch.Tensor]:
    from liif_sr.data.images import read_image

    files = sorted((data / "T91").iterdir()) + sorted((data / "BSDS400").iterdir())
    rng.shuffle(files)
    out = []
    for f in files[:limit]:
        img = torch.from_numpy(read_image(f)).permute(2, 0, 1).contiguous()
        if min(img.shape[-2:]) >= 48:
            out.append(img)
    return out


def train_head(
    head_name: str,
    minutes: float,
    max_steps: int,
    batch: int,
    seed: int,
    data: Path = DATA,
    lr: float = 5e-4,
    init_scale: float = 1.0,
    init: Path | None = None,
) -> Path:
    from safetensors.torch import save_file

    from liif_sr import load_model
    from liif_sr.data.sampling import random_scale_sample
    from liif_sr.models.implicit_sr import ImplicitSR
    from liif_sr.models.registry import head_class

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    base = load_model("edsr-baseline-liif")
    head = head_class(head_name)(in_channels=base.encoder.out_dim)
    net = ImplicitSR(base.encoder, head)
    for p in net.encoder.parameters():
        p.requires_grad_(False)
    with torch.no_grad():  # a small last layer: the first steps start near zero output (MetaSR: 1728 weights)
        last = [m for m in head.modules() if isinstance(m, torch.nn.Linear)][-1]
        last.weight.mul_(init_scale)
        last.bias.mul_(init_scale)
    if init is not None:  # continue from an earlier run of this script (its head file)
        from safetensors.torch import load_file

        head.load_state_dict(load_file(str(init)))
    images = _images(data, 300, random.Random(seed))
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    start, step = time.monotonic(), 0
    budget = minutes * 60
    while step < max_steps and time.monotonic() - start < budget:
        frac = (time.monotonic() - start) / budget
        for g in opt.param_groups:  # cosine over the time budget
            g["lr"] = 1e-5 + (lr - 1e-5) * 0.5 * (1 + torch.cos(torch.tensor(frac * torch.pi)).item())
        samples = [
            random_scale_sample(images[int(torch.randint(len(images), (), generator=gen))], generator=gen)
            for _ in range(batch)
        ]
        inp, coord, cell, gt = (torch.stack([s[k] for s in samples]) for k in ("inp", "coord", "cell", "gt"))
        with torch.no_grad():
            x = (inp - 0.5) / 0.5
            feat = net.encoder(x)
        pred = head(feat, coord, cell, lr=x)
        loss = F.l1_loss(pred, (gt - 0.5) / 0.5)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % 20 == 0:
            print(
                f"{head_name} step {step} loss {loss.item():.4f} {time.monotonic() - start:.0f}s", flush=True
            )
    FIXTURES.mkdir(parents=True, exist_ok=True)
    out = FIXTURES / f"{head_name}.safetensors"
    sd = {k: v.detach().contiguous() for k, v in head.state_dict().items()}
    meta = {"head": json.dumps({"name": head_name, **head.config}), "steps": str(step), "seed": str(seed)}
    meta.update(lr=str(lr), init_scale=str(init_scale), batch=str(batch), minutes=str(minutes))
    meta.update(init=str(init.name if init else None))
    save_file(sd, str(out), metadata=meta)
    print(f"{head_name}: {step} steps in {time.monotonic() - start:.0f} s -> {out}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--head", required=True, choices=["lte", "metasr"])
    p.add_argument("--minutes", type=float, default=9.0)
    p.add_argument("--max-steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--lr", type=float, default=5e-4, help="Adam's peak learning rate (cosine over the time)")
    p.add_argument("--init-scale", type=float, default=1.0, help="scale of the last layer's initial weights")
    p.add_argument("--init", type=Path, default=None, help="start from this head file (an earlier run's)")
    p.add_argument("--data", type=Path, default=DATA, help="folder with T91/ and BSDS400/")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    train_head(
        args.head,
        args.minutes,
        args.max_steps,
        args.batch,
        args.seed,
        args.data,
        args.lr,
        args.init_scale,
        args.init,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
