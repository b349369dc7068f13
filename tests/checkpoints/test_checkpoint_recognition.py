"""Issue #14: anything given as a checkpoint is recognised by its content, and a run folder uses its weights."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from liif_sr import load_model
from liif_sr.checkpoints import read_checkpoint, resolve_checkpoint, save_weights, sniff_checkpoint
from liif_sr.errors import CheckpointError
from liif_sr.models import EDSRBaseline, ImplicitSR, LIIFHead


def _tiny(seed: int = 0) -> ImplicitSR:
    torch.manual_seed(seed)
    return ImplicitSR(EDSRBaseline(n_resblocks=1, n_feats=8), LIIFHead(8, hidden_list=[16]))


def _lightning_ckpt(model: ImplicitSR, path) -> None:
    sd = {f"net.{k}": v for k, v in model.state_dict().items()}
    torch.save({"liif_sr": {"model": model.config}, "state_dict": sd, "epoch": 3}, path)


def _write(path, kind: str):
    if kind in ("png", "jpg", "webp", "gif", "tif", "bmp"):
        Image.new("RGB", (4, 4), (10, 20, 30)).save(
            path, format={"jpg": "JPEG", "tif": "TIFF"}.get(kind, kind)
        )
    elif kind == "text":
        path.write_text("my notes about the run\nlr=1e-4 ünïcode\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "binary":
        path.write_bytes(bytes(range(256)) * 4)
    return path


@pytest.mark.parametrize(
    "name,kind,what",
    [
        ("notes.txt", "text", "a text file"),
        ("notes.pth", "text", "a text file"),
        ("notes.ckpt", "text", "a text file"),
        ("notes.safetensors", "text", "a text file"),
        ("photo.png", "png", "a PNG image"),
        ("photo.ckpt", "png", "a PNG image"),
        ("photo.jpg", "jpg", "a JPEG image"),
        ("photo.webp", "webp", "a WebP image"),
        ("photo.gif", "gif", "a GIF image"),
        ("photo.tif", "tif", "a TIFF image"),
        ("photo.bmp", "bmp", "a BMP image"),
        ("empty.pth", "empty", "empty file"),
        ("random.bin", "binary", "unknown format"),
    ],
)
def test_not_a_checkpoint(tmp_path, name, kind, what):
    path = _write(tmp_path / name, kind)
    with pytest.raises(CheckpointError) as exc:
        load_model(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: not a checkpoint ({what})") and "\n" not in msg
    assert "pickled code" not in msg and "plain weights" not in msg  # not a security refusal


def test_format_from_content_not_suffix(tmp_path):
    model = _tiny()
    st = save_weights(model, tmp_path / "m.safetensors")
    pth = save_weights(model, tmp_path / "m.pth")
    assert sniff_checkpoint(st) == "safetensors" and sniff_checkpoint(pth) == "zip"
    (tmp_path / "st_named.pth").write_bytes(st.read_bytes())
    (tmp_path / "zip_named.safetensors").write_bytes(pth.read_bytes())
    for p in (tmp_path / "st_named.pth", tmp_path / "zip_named.safetensors"):
        assert load_model(p).config == model.config


def test_malformed_content_is_one_line(tmp_path):
    torch.save({"liif_sr": 1, "state_dict": {}}, tmp_path / "a.ckpt")
    torch.save({"model": {"sd": {}, "name": "liif", "args": None}}, tmp_path / "b.pth")
    for p in (tmp_path / "a.ckpt", tmp_path / "b.pth"):
        with pytest.raises(CheckpointError) as exc:
            read_checkpoint(p)
        assert str(p) in str(exc.value) and "\n" not in str(exc.value)


def test_run_folder(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    last, final = _tiny(1), _tiny(2)
    _lightning_ckpt(last, run / "checkpoints" / "last.ckpt")
    lr = torch.rand(1, 3, 5, 6)
    # only checkpoints/last.ckpt (training still running): used
    assert resolve_checkpoint(run) == run / "checkpoints" / "last.ckpt"
    assert torch.equal(load_model(run).upscale(lr, (9, 11)), last.eval().upscale(lr, (9, 11)))
    # model.safetensors (training finished) is preferred
    save_weights(final, run / "model.safetensors")
    assert resolve_checkpoint(run) == run / "model.safetensors"
    assert torch.equal(load_model(str(run)).upscale(lr, (9, 11)), final.eval().upscale(lr, (9, 11)))
    assert read_checkpoint(run)[0] == final.config


def test_folder_without_run_weights(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(
        CheckpointError, match=r"empty: an empty folder, not a run folder \(no model.safetensors"
    ):
        load_model(empty)
    other = tmp_path / "other"
    (other / "logs").mkdir(parents=True)
    (other / "config.yaml").write_text("x: 1")
    with pytest.raises(CheckpointError, match=r"not a run folder .*; it holds: config.yaml, logs/$"):
        load_model(other)
    weights = tmp_path / "weights"
    (weights / "checkpoints").mkdir(parents=True)
    save_weights(_tiny(), weights / "best.safetensors")
    _lightning_ckpt(_tiny(), weights / "checkpoints" / "epoch=9.ckpt")
    with pytest.raises(
        CheckpointError,
        match="pass one of its weight files instead: best.safetensors, checkpoints/epoch=9.ckpt",
    ):
        load_model(weights)


def test_missing_name_lists_shipped_models(tmp_path):
    with pytest.raises(
        CheckpointError,
        match=r"edsr-baseline: checkpoint file not found \(shipped models: edsr-baseline-liif\)",
    ):
        load_model("edsr-baseline")
    with pytest.raises(CheckpointError, match="checkpoint file not found$"):
        load_model(tmp_path / "nope.ckpt")
