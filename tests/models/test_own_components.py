"""Issue 19, point 3: a user's own encoder and head, defined here (outside the package), registered with the
decorators, trained two steps through the real training entry (``train(cfg)``: the LightningModule, its
datamodule, callbacks), saved, reloaded with ``load_model`` and used to upscale — from Python and from a
config ``_target_`` (a config file of the user's, found through ``hydra.searchpath``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from helpers import TINY_DATA
from torch import Tensor, nn

from liif_sr import load_model
from liif_sr.checkpoints import save_weights
from liif_sr.errors import CheckpointError
from liif_sr.models import DecoderHead, Encoder, ImplicitSR, register_encoder, register_head
from liif_sr.models.heads.base import HeadState, window_of
from liif_sr.models.registry import UnknownComponentError


@register_encoder("test_tiny_conv")
class TinyEncoder(Encoder):
    """One 3x3 convolution: a latent depends on its 3x3 LR neighbourhood (receptive radius 1)."""

    def __init__(self, n_feats: int = 8) -> None:
        super().__init__()
        self.out_dim, self.config = n_feats, {"n_feats": n_feats}
        self.conv = nn.Conv2d(3, n_feats, 3, padding=1)

    @property
    def receptive_radius(self) -> int:
        return 1

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


@dataclass
class NearestState(HeadState):
    feat: Tensor


@register_head("test_nearest_mlp")
class NearestHead(DecoderHead):
    """The nearest latent, the offset to its centre and the cell through a small MLP."""

    reach = 1

    def __init__(self, in_channels: int = 8, hidden_list: list[int] = (16,), fast: bool = True) -> None:
        super().__init__()
        self.in_channels, self.fast, self.config = in_channels, fast, {"hidden_list": list(hidden_list)}
        hidden = int(hidden_list[0])
        self.mlp = nn.Sequential(nn.Linear(in_channels + 4, hidden), nn.ReLU(), nn.Linear(hidden, 3))

    def prepare(self, feat, lr=None, offset=None, full_size=None) -> NearestState:
        return NearestState(*window_of(feat, offset, full_size), feat=feat)

    def decode(self, state: NearestState, coord: Tensor, cell: Tensor | None = None) -> Tensor:
        (h, w), (oy, ox), (th, tw) = state.full_size, state.offset, state.size
        u = (coord + 1) * coord.new_tensor([h / 2, w / 2])
        iy = u[..., 0].floor().clamp(0, h - 1)
        ix = u[..., 1].floor().clamp(0, w - 1)
        rel = u - torch.stack([iy, ix], dim=-1) - 0.5
        idx = ((iy.long() - oy).clamp(0, th - 1) * tw + (ix.long() - ox).clamp(0, tw - 1)).unsqueeze(1)
        feat = state.feat.flatten(2).gather(2, idx.expand(-1, state.feat.shape[1], -1)).transpose(1, 2)
        cell = torch.zeros_like(coord) if cell is None else cell * coord.new_tensor([h / 2, w / 2])
        return self.mlp(torch.cat([feat, rel, cell], dim=-1))


def _user_configs(root: Path) -> Path:
    """What a user writes: one config file per component (``_target_`` = their class)."""
    (root / "model" / "encoder").mkdir(parents=True)
    (root / "model" / "head").mkdir(parents=True)
    (root / "model" / "encoder" / "tiny_conv.yaml").write_text(
        f"_target_: {__name__}.TinyEncoder\nn_feats: 8\n"
    )
    (root / "model" / "head" / "nearest_mlp.yaml").write_text(
        f"_target_: {__name__}.NearestHead\n_partial_: true\nhidden_list: [16]\n"
    )
    return root


def test_own_encoder_and_head_train_save_reload_upscale(run_train, tmp_path):
    conf = _user_configs(tmp_path / "my_conf")
    cfg, (metrics, objs) = run_train(
        f"hydra.searchpath=[file://{conf}]",
        "model/encoder=tiny_conv",
        "model/head=nearest_mlp",
        "model.head.hidden_list=[16]",  # the quickstart experiment sets it too
        *TINY_DATA,
        "trainer.accelerator=cpu",
        "trainer.max_steps=2",
        "callbacks.progress_bar=null",
        "callbacks.quickstart_report=null",
    )
    assert objs["trainer"].global_step == 2 and "train/loss" in metrics
    net = objs["model"].net
    assert isinstance(net.encoder, TinyEncoder) and isinstance(net.head, NearestHead)
    out = Path(cfg.paths.output_dir)
    for path in (out / "model.safetensors", out / "checkpoints" / "last.ckpt"):
        model = load_model(path)  # the names stored are test_tiny_conv / test_nearest_mlp: registered here
        assert model.config == {"encoder": {"name": "test_tiny_conv", "args": {"n_feats": 8}},
                                "head": {"name": "test_nearest_mlp", "hidden_list": [16]}}  # fmt: skip
        lr = torch.rand(1, 3, 9, 11)
        sr = model.upscale(lr, (27, 33))
        assert sr.shape == (1, 3, 27, 33) and sr.min() >= 0 and sr.max() <= 1
        assert torch.equal(sr, net.eval().upscale(lr, (27, 33)))


def test_own_components_from_python(tmp_path):
    torch.manual_seed(0)
    model = ImplicitSR(TinyEncoder(8), NearestHead).eval()  # a head factory, called with in_channels=8
    assert model.name == "test_tiny_conv-test_nearest_mlp"
    lr = torch.rand(2, 3, 12, 10)
    from liif_sr.inference.tiling import upscale_tiled

    whole = model.upscale(lr, (30, 25))
    assert (upscale_tiled(model, lr, (30, 25), tile=4) - whole).abs().max() <= 1e-6  # the contract tiles it
    reloaded = load_model(save_weights(model, tmp_path / "m.safetensors"))
    assert torch.equal(reloaded.upscale(lr, (30, 25)), whole)


def test_unknown_name_at_load_time_is_one_line(tmp_path):
    model = ImplicitSR(TinyEncoder(8), NearestHead(8)).eval()
    path = save_weights(model, tmp_path / "m.safetensors")
    from liif_sr.models import registry

    saved = registry.HEADS.pop("test_nearest_mlp")  # as in a session that did not import the user's module
    try:
        with pytest.raises(CheckpointError) as exc:
            load_model(path)
    finally:
        registry.HEADS["test_nearest_mlp"] = saved
    msg = str(exc.value)
    assert "\n" not in msg and "unknown head 'test_nearest_mlp'" in msg
    assert "import the module that registers it (@register_head) before loading" in msg


def test_registration_rules():
    with pytest.raises(ValueError, match="already"):
        register_encoder("rdn")(type("Other", (TinyEncoder,), {}))
    with pytest.raises(ValueError, match="without '-'"):
        register_head("a-b")(type("Dash", (NearestHead,), {}))

    class Unregistered(TinyEncoder):
        pass

    Unregistered.name = "test_tiny_conv"  # same name, another class: refused when a model is built
    with pytest.raises(UnknownComponentError, match="decorate it with @liif_sr.models.register_encoder"):
        ImplicitSR(Unregistered(8), NearestHead(8))


def test_known_names_in_messages_are_sorted_by_name():
    """The names an unknown-component message lists follow the name, not the order of registration (a
    user's head registered last still sorts first)."""
    from liif_sr.models import registry

    @register_head("aaa_test_first")
    class First(NearestHead):
        pass

    class Unregistered(NearestHead):
        pass

    Unregistered.name = "zzz_test_unregistered"
    try:
        with pytest.raises(UnknownComponentError) as exc:
            registry.head_class("nope")
        listed = str(exc.value).split("known: ")[1].split(";")[0].split(", ")
        assert listed == sorted(listed) and listed[0] == "aaa_test_first"
        assert {"liif", "lte", "metasr", "lmliif", "lmlte", "lmciaosr", "test_nearest_mlp"} <= set(listed)
        with pytest.raises(UnknownComponentError) as exc:
            ImplicitSR(TinyEncoder(8), Unregistered(8))
        listed = str(exc.value).split("known heads: ")[1].split(")")[0].split(", ")
        assert listed == sorted(listed) and listed[0] == "aaa_test_first"
        assert "zzz_test_unregistered" not in listed
    finally:
        registry.HEADS.pop("aaa_test_first")


def test_the_removed_mode_alias_fails_loudly():
    """``head.mode = "plain"`` must not silently keep the fast path (it was the deprecated spelling of fast)."""
    from liif_sr.models import LIIFHead

    head = LIIFHead(8, hidden_list=[8])
    with pytest.raises(AttributeError, match="use head.fast"):
        head.mode = "plain"
    with pytest.raises(AttributeError, match="mode"):
        head.mode  # noqa: B018  (nn.Module reports a missing attribute)
    with pytest.raises(TypeError, match="mode"):
        LIIFHead(8, mode="plain")
    assert head.fast
