"""Training data: bad files reported at start-up (fail fast or skip), small images handled, sample shapes."""

from __future__ import annotations

import logging

import corpus
import numpy as np
import pytest
import torch
from PIL import Image

from liif_sr.data.datamodule import RandomScaleDataModule
from liif_sr.data.sampling import random_scale_sample
from liif_sr.errors import UserError


def _folder(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)).save(tmp_path / "good.png")
    Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(tmp_path / "small.png")
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / "tiny.png")
    corpus.truncated_png(tmp_path)
    return tmp_path


def _dm(folder, **kw):
    return RandomScaleDataModule(train_sources=[str(folder)], inp_size=16, sample_q=64, batch_size=2, **kw)


def test_bad_training_files_fail_fast_with_the_list(tmp_path):
    folder = _folder(tmp_path)
    with pytest.raises(UserError) as exc:
        _dm(folder).setup("fit")
    msg = str(exc.value)
    assert "skip_bad_files" in msg and "tiny.png" in msg and "truncated" in msg
    assert "good.png" not in msg and "small.png" not in msg


def test_bad_training_files_skipped_with_warning(tmp_path, caplog):
    folder = _folder(tmp_path)
    dm = _dm(folder, skip_bad_files=True)
    with caplog.at_level(logging.WARNING):
        dm.setup("fit")
    assert "skipping 2 unusable image(s)" in caplog.text
    names = sorted(p.rsplit("/", 1)[-1] for p in dm.train_set.images.items)
    assert names == ["good.png", "small.png"]
    batch = next(iter(dm.train_dataloader()))
    assert batch["inp"].shape == (2, 3, 16, 16) and batch["coord"].shape == (2, 64, 2)


def test_image_smaller_than_largest_crop_caps_the_scale():
    hr = torch.randint(0, 256, (3, 20, 24), dtype=torch.uint8)
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):  # U(1, 4) would ask for crops up to 64 px: capped at the image's 20 px
        s = random_scale_sample(hr, inp_size=16, scale_min=1, scale_max=4, sample_q=64, generator=gen)
        cell_h = float(s["cell"][0, 0])
        assert 2 / 20 - 1e-6 <= cell_h <= 2 / 16 + 1e-6
        assert s["inp"].shape == (3, 16, 16) and s["gt"].shape == (64, 3)
        assert s["gt"].min() >= 0 and s["gt"].max() <= 1 and s["coord"].abs().max() < 1


def test_sample_statistics_follow_the_paper():
    hr = torch.randint(0, 256, (3, 300, 300), dtype=torch.uint8)
    gen = torch.Generator().manual_seed(1)
    sizes = []
    for _ in range(200):
        s = random_scale_sample(hr, inp_size=48, sample_q=2304, generator=gen)
        sizes.append(round(2 / float(s["cell"][0, 0])))
        assert s["cell"].shape == (2304, 2) and len(torch.unique(s["coord"], dim=0)) == 2304  # no repeats
    sizes = np.array(sizes)
    assert sizes.min() >= 48 and sizes.max() <= 192  # HR crop round(48 s), s ~ U(1, 4)
    assert abs(sizes.mean() - 48 * 2.5) < 8
