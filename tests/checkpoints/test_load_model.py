"""Checkpoint loading is weights-only, safe, and explains mismatches (issue: reliability)."""

from __future__ import annotations

import os
import pickle
import re

import pytest
import torch
from official_liif import OfficialEDSR, OfficialLIIF, official_checkpoint

from liif_sr import load_model
from liif_sr.checkpoints import read_checkpoint, save_weights
from liif_sr.errors import CheckpointError
from liif_sr.models import RDN, EDSRBaseline, ImplicitSR, LIIFHead


def _tiny() -> ImplicitSR:
    return ImplicitSR(EDSRBaseline(n_resblocks=1, n_feats=8), LIIFHead(8, hidden_list=[16]))


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED_BY_PICKLE",))


def test_pickle_with_code_payload_is_rejected(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:  # a legacy (non-zip) pickle whose unpickling runs a command
        pickle.dump({"model": {"name": "liif", "args": {}, "sd": {}}, "x": _Payload()}, f)
    with pytest.raises(CheckpointError, match="never executes pickled code"):
        load_model(path)
    assert not (tmp_path / "PWNED_BY_PICKLE").exists()
    zpath = tmp_path / "evil_zip.pth"
    torch.save({"format": "liif-sr", "payload": _Payload()}, zpath)  # zip format, same payload
    with pytest.raises(CheckpointError, match="never executes pickled code"):
        load_model(zpath)
    assert not (tmp_path / "PWNED_BY_PICKLE").exists()


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_truncated_checkpoint(tmp_path, suffix):
    path = save_weights(_tiny(), tmp_path / f"m{suffix}")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="(truncated|not a readable)") as exc:
        load_model(path)
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "nope.ckpt")
    torch.save({"hello": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not a liif-sr or official LIIF/LTE checkpoint"):
        load_model(tmp_path / "other.pth")
    (tmp_path / "text.pth").write_text("not a checkpoint")
    with pytest.raises(CheckpointError):
        load_model(tmp_path / "text.pth")


def test_mismatch_is_named(tmp_path):
    path = save_weights(_tiny(), tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match=r"encoder.name='edsr_baseline', expected 'rdn'"):
        load_model(path, expect={"encoder": {"name": "rdn"}})
    # weights of one model under another model's config
    config, sd = read_checkpoint(path)
    bigger = ImplicitSR(EDSRBaseline(n_resblocks=1, n_feats=16), LIIFHead(16, hidden_list=[16]))
    torch.save({"format": "liif-sr", "model": bigger.config, "state_dict": sd}, tmp_path / "mix.pth")
    with pytest.raises(CheckpointError, match="size mismatch|do not match"):
        load_model(tmp_path / "mix.pth")


def test_roundtrip_formats_equal(tmp_path):
    torch.manual_seed(0)
    model = ImplicitSR(RDN(G0=8, D=2, C=2, G=4), LIIFHead(8, hidden_list=[16, 16], cell_decode=False)).eval()
    lr = torch.rand(1, 3, 6, 7)
    want = model.upscale(lr, (13, 9))
    for name in ("a.safetensors", "b.pth"):
        got = load_model(save_weights(model, tmp_path / name)).upscale(lr, (13, 9))
        assert torch.equal(got, want)
    half = load_model(save_weights(model, tmp_path / "h.safetensors", half=True))
    assert (half.upscale(lr, (13, 9)) - want).abs().max() < 5e-3


def test_official_module_prefix_and_unsupported(tmp_path):
    ref = OfficialLIIF(OfficialEDSR(n_resblocks=1, n_feats=8), hidden_list=[16])
    ck = official_checkpoint(ref, "edsr-baseline", {"n_resblocks": 1, "n_feats": 8}, [16], {})
    ck["model"]["sd"] = {"module." + k: v for k, v in ck["model"]["sd"].items()}  # DataParallel-saved
    torch.save(ck, tmp_path / "dp.pth")
    assert load_model(tmp_path / "dp.pth").config["head"]["hidden_list"] == [16]
    ck["model"]["name"] = "lte-fast"
    torch.save(ck, tmp_path / "fast.pth")
    want = (
        "official model 'lte-fast' with encoder 'edsr-baseline' is not supported; "
        "supported: liif, lte, metasr, lmliif, lmlte, lmciaosr with edsr-baseline, rdn, swinir"
    )
    with pytest.raises(CheckpointError, match=re.escape(want)):
        load_model(tmp_path / "fast.pth")
