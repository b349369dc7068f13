"""DeviceSampler (data.sampler=device) against the CPU reference path, on the CPU device.

The sampler draws its random choices (``draw``) and applies them (``build``); the CPU reference functions
applied to the same choices must give the same LR (Pillow bicubic), flips, coordinates, cells and pixels, and
the choices themselves must follow the paper's distribution (compared with ``random_scale_sample``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import default_collate

from liif_sr.coords import make_coord
from liif_sr.data.gpu_sampler import DeviceSampler, pil_bicubic_matrix
from liif_sr.data.resize import resize_pil_bicubic
from liif_sr.data.sampling import augment_pair, random_scale_sample
from liif_sr.data.sources import load_source_image

PHOTOS = ("astronaut", "rocket", "coffee", "chelsea", "motorcycle_left")


@pytest.fixture(scope="module")
def photos() -> list[torch.Tensor]:
    return [load_source_image(f"skimage:{name}") for name in PHOTOS]


def _pil_two_pass(img: np.ndarray, out: int) -> np.ndarray:
    """(H, W, 3) uint8 square image → (out, out, 3): horizontal pass, 8-bit rounding, vertical pass."""
    m = pil_bicubic_matrix(img.shape[1], out)
    tmp = np.clip(np.floor((np.einsum("ow,hwc->hoc", m, img.astype(np.float64)) + 2**21) / 2**22), 0, 255)
    return np.clip(np.floor((np.einsum("oh,hwc->owc", m, tmp) + 2**21) / 2**22), 0, 255).astype(np.uint8)


def test_pil_bicubic_matrix_reproduces_pillow(photos):
    """Every crop size of the paper's range (48..192 → 48), and a few up-scales, on a real photo."""
    img = photos[0].permute(1, 2, 0).numpy()
    worst, mismatched, total = 0, 0, 0
    for n in [*range(48, 193), 20, 33, 47]:
        crop = np.ascontiguousarray(img[101 : 101 + n, 37 : 37 + n])
        ref = np.asarray(Image.fromarray(crop).resize((48, 48), Image.BICUBIC))
        got = _pil_two_pass(crop, 48)
        diff = np.abs(ref.astype(int) - got.astype(int))
        worst, mismatched, total = (
            max(worst, int(diff.max())),
            mismatched + int((diff > 0).sum()),
            total + diff.size,
        )
    # bit-exact with the Pillow builds seen so far; at most one 8-bit level allowed (a fused multiply-add
    # in another Pillow build could move a coefficient by one fixed-point unit)
    assert worst <= 1 and mismatched <= 1e-4 * total, (worst, mismatched)


def _reference(img: torch.Tensor, p, k: int) -> dict[str, torch.Tensor]:
    """The CPU path (PIL resize, augment_pair, make_coord) applied to sample k's drawn choices."""
    n, x0, y0 = int(p.size[k]), int(p.x0[k]), int(p.y0[k])
    crop_hr = img[:, x0 : x0 + n, y0 : y0 + n]
    crop_lr = resize_pil_bicubic(crop_hr, (48, 48))
    crop_lr, crop_hr = augment_pair(crop_lr, crop_hr, tuple(bool(f) for f in p.flips[k]))
    flat = p.row[k] * n + p.col[k]
    return {
        "inp": crop_lr.float() / 255,
        "coord": make_coord((n, n))[flat],
        "cell": torch.tensor([2.0 / n, 2.0 / n]).expand(flat.shape[0], 2),
        "gt": crop_hr.reshape(3, -1).t()[flat].float() / 255,
    }


def test_batch_equals_cpu_reference_on_same_choices(photos):
    sampler = DeviceSampler(photos, seed=3)
    index = torch.arange(24) % len(photos)
    params = sampler.draw(index)
    batch = sampler.build(index, params)
    assert params.flips.any(0).all() and (~params.flips).any(0).all()  # both branches of every flip
    assert int(params.size.min()) < 80 and int(params.size.max()) > 160
    lr_diff = 0.0
    for k in range(len(index)):
        ref = _reference(photos[int(index[k])], params, k)
        lr_diff = max(lr_diff, float((batch["inp"][k] - ref["inp"]).abs().max()))
        assert torch.equal(batch["coord"][k], ref["coord"]), k  # make_coord's float32 arithmetic, bit for bit
        assert torch.equal(batch["cell"][k], ref["cell"])
        assert torch.equal(batch["gt"][k], ref["gt"])
    assert lr_diff <= 1 / 255 + 1e-7  # in practice 0: the LR is Pillow's, bit for bit


def test_shapes_dtypes_and_determinism(photos):
    index = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])
    a = DeviceSampler(photos, seed=7)(index)
    b = DeviceSampler(photos, seed=7)(index)
    c = DeviceSampler(photos, seed=8)(index)
    shapes = {"inp": (8, 3, 48, 48), "coord": (8, 2304, 2), "cell": (8, 2304, 2), "gt": (8, 2304, 3)}
    for key, shape in shapes.items():
        assert a[key].shape == shape and a[key].dtype == torch.float32 and a[key].device.type == "cpu"
        assert torch.equal(a[key], b[key])
    assert not torch.equal(a["coord"], c["coord"])
    for key in ("inp", "gt"):  # 8-bit levels in [0, 1]
        assert float(a[key].min()) >= 0 and float(a[key].max()) <= 1
        assert torch.equal(torch.round(a[key] * 255) / 255, a[key])
    assert float(a["coord"].abs().max()) < 1
    # same keys and dtypes as the CPU path + default_collate
    cpu = default_collate([random_scale_sample(photos[0]) for _ in range(2)])
    assert {k: v.dtype for k, v in cpu.items()} == {k: v.dtype for k, v in a.items()}
    # without replacement: the pixels of one sample are distinct
    n = torch.round(2 / a["cell"][:, 0, 0]).long()
    pix = torch.round((a["coord"] + 1) * n[:, None, None] / 2 - 0.5).long()
    keys = pix[..., 0] * 1000 + pix[..., 1]
    assert all(torch.unique(keys[k]).numel() == 2304 for k in range(8))


def _stats(batch: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    n = torch.round(2 / batch["cell"][:, 0, 0])
    u = (batch["coord"] + 1) / 2  # pixel-centre position in (0, 1) of the crop
    return {"n": n.numpy(), "u": u.reshape(-1, 2).numpy(), "gt": batch["gt"].reshape(-1, 3).numpy()}


def test_distribution_matches_cpu_path(photos):
    """Scales (via cells), query positions, pixel values: device sampler vs random_scale_sample."""
    kw = {"inp_size": 16, "scale_min": 1.0, "scale_max": 4.0, "sample_q": 64}
    torch.manual_seed(0)
    cpu = [random_scale_sample(photos[i % len(photos)], **kw) for i in range(600)]
    cpu_stats = _stats(default_collate(cpu))
    sampler = DeviceSampler(photos, seed=0, **kw)
    index = torch.arange(1200) % len(photos)
    dev_stats = _stats(sampler(index))
    # crop sizes n = round(16 s), s ~ U(1, 4): against the exact law, and the two paths against each other
    sizes = np.arange(16, 65)
    lo, hi = np.clip((sizes - 0.5) / 16, 1, 4), np.clip((sizes + 0.5) / 16, 1, 4)
    cdf = np.cumsum((hi - lo) / 3)
    for st in (cpu_stats, dev_stats):
        emp = np.searchsorted(np.sort(st["n"]), sizes, side="right") / len(st["n"])
        assert np.abs(emp - cdf).max() < 0.07  # Kolmogorov-Smirnov, n >= 600
    assert abs(dev_stats["n"].mean() - cpu_stats["n"].mean()) < 2.5  # mean 40, sd 14
    # query positions uniform over the crop (both axes): mean 1/2, variance 1/12
    for st in (cpu_stats, dev_stats):
        assert np.allclose(st["u"].mean(0), 0.5, atol=0.01)
        assert np.allclose(st["u"].var(0), 1 / 12, atol=0.004)
    # pixel values: close to each other and to the mean of the source images
    hr_mean = np.mean([img.float().mean().item() / 255 for img in photos])
    assert abs(dev_stats["gt"].mean() - cpu_stats["gt"].mean()) < 0.02
    assert abs(dev_stats["gt"].mean() - hr_mean) < 0.03
    # flips balanced
    flips = sampler.draw(torch.arange(4000) % len(photos)).flips.float().mean(0)
    assert torch.allclose(flips, torch.full((3,), 0.5), atol=0.03)


def test_small_images_cap_the_scale_like_the_cpu_path():
    img = torch.randint(0, 256, (3, 60, 300), dtype=torch.uint8)
    sampler = DeviceSampler([img], seed=0)
    params = sampler.draw(torch.zeros(64, dtype=torch.long))
    assert int(params.size.max()) == 60 and int(params.size.min()) >= 48
    assert int((params.x0 + params.size).max()) <= 60 and int((params.y0 + params.size).max()) <= 300


def test_rejects_what_it_cannot_do(photos):
    with pytest.raises(ValueError, match="pil"):
        DeviceSampler(photos, downsampler="matlab")
    with pytest.raises(ValueError, match="sample_q"):
        DeviceSampler(photos, sample_q=None)
    with pytest.raises(ValueError, match="smaller"):
        DeviceSampler([torch.zeros(3, 40, 40, dtype=torch.uint8)])
    with pytest.raises(ValueError, match="GiB"):
        DeviceSampler(photos, max_bytes=1000)
