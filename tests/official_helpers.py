"""Helpers shared by the parity tests against the official re-statements (``tests/official_*.py``): official
encoders, non-trivial weights, official-format ``.pth`` files built once per module, the test.py input route
(SwinIR flip padding), pixel-centre grids, relative errors, one-line refusals and the no-host-sync guard."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from helpers import one_thread
from official_liif import OfficialEDSR, OfficialRDN, official_make_coord
from official_swinir import OfficialSwinIR, official_flip_pad

from liif_sr import load_model
from liif_sr.errors import CheckpointError

#: the official encoder classes by the names of the official configs (default arguments: the papers' models)
ENCODERS: dict[str, Callable[[], torch.nn.Module]] = {
    "edsr-baseline": OfficialEDSR,
    "rdn": OfficialRDN,
    "swinir": OfficialSwinIR,
}
#: the encoder args the official RDN configs store
RDN_ARGS = {"G0": 64, "RDNkSize": 3, "RDNconfig": "B"}


def official_encoder(encoder: str) -> tuple[torch.nn.Module, dict]:
    """The official ``encoder`` and the encoder args its official ``train.py`` checkpoint stores."""
    return ENCODERS[encoder](), (dict(RDN_ARGS) if encoder == "rdn" else {})


def perturb(module: torch.nn.Module, std: float = 0.01, seed: int | None = 1, encoder: bool = False) -> None:
    """Non-trivial weights (biases too): add ``N(0, std)`` noise to the head's parameters (also the encoder's
    with ``encoder=True``, e.g. SwinIR's constant-initialised ones), drawn from a generator seeded ``seed``
    (the global RNG when ``seed`` is None)."""
    gen = None if seed is None else torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if encoder or not name.startswith("encoder."):
                p.add_(torch.randn(p.shape, generator=gen) * std)


def rel(got: torch.Tensor, want: torch.Tensor) -> float:
    """Max absolute error relative to the reference's max magnitude."""
    return ((got - want).abs().max() / want.abs().max()).item()


def grid(
    h: int, w: int, b: int, factors: tuple[float, ...] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The pixel centres of an ``h x w`` output (batch ``b``) and their cells; item i's cell is the grid's cell
    times ``factors[i]`` when given."""
    coord = official_make_coord((h, w)).unsqueeze(0).expand(b, -1, -1)
    cell = torch.ones_like(coord) * torch.tensor([2 / h, 2 / w])
    if factors is not None:
        cell = cell * torch.tensor(factors[:b]).view(b, 1, 1)
    return coord, cell


def official_inputs(
    lr: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor, swinir: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """test.py's input for queries ``coord``/``cell`` of ``lr`` (B, 3, h, w) in [0, 1]: normalised; for SwinIR
    flip-padded (``--window 8``) with the queries in the padded frame (``c' = (c + 1) h / h_pad - 1``,
    ``cell' = cell h / h_pad``, docs/method.md "Evaluation protocol")."""
    inp = (lr - 0.5) / 0.5
    if swinir:
        h, w = inp.shape[-2:]
        inp = official_flip_pad(inp)
        ratio = torch.tensor([h / inp.shape[-2], w / inp.shape[-1]])
        coord, cell = (coord + 1) * ratio - 1, cell * ratio
    return inp, coord, cell


@contextlib.contextmanager
def one_thread_reporting(errors: dict[str, float]) -> Iterator[None]:
    """Single-threaded torch for a module; at its end print the measured max relative ``errors`` (``-s``)."""
    with one_thread():
        yield
    for key, err in sorted(errors.items()):
        print(f"{key}: max relative error {err:.2e}")


def official_file_cache(
    tmp_path_factory: pytest.TempPathFactory,
    build: Callable[[str, str], tuple[torch.nn.Module, dict]],
    folder: str,
) -> Callable[[str, str], tuple[torch.nn.Module, Path]]:
    """``(head, encoder) -> (official model, path of its official-format .pth)``, each built once by ``build``."""
    cache: dict[tuple[str, str], tuple[torch.nn.Module, Path]] = {}

    def get(head: str, encoder: str) -> tuple[torch.nn.Module, Path]:
        if (head, encoder) not in cache:
            ref, ckpt = build(head, encoder)
            path = tmp_path_factory.mktemp(folder) / f"{head}_{encoder}.pth"
            torch.save(ckpt, path)
            cache[head, encoder] = ref, path
        return cache[head, encoder]

    return get


def refused(tmp_path: Path, ckpt: dict, pattern: str) -> str:
    """``load_model`` of ``ckpt`` saved as a ``.pth`` raises one line matching ``pattern`` that names the file."""
    path = tmp_path / "bad.pth"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=pattern) as exc:
        load_model(path)
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg, msg
    return msg


def forbid_host_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every tensor-to-host conversion raise (each is a host-device sync on CUDA); ``monkeypatch.undo()``
    lifts it."""

    def sync(*args, **kwargs):
        raise AssertionError("host-device sync in the training forward")

    for name in ("item", "tolist", "__bool__", "__int__", "__float__"):
        monkeypatch.setattr(torch.Tensor, name, sync)


def assert_window_decode_equals_full(
    model, lr: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor
) -> None:
    """``prepare(window, offset, full_size)`` + decode of the window's owned queries == the whole-grid decode;
    queries outside the window are refused. Owned LR pixels rows 4..7, cols 3..6; window = owned +- reach."""
    x = (lr - 0.5) / 0.5
    size = tuple(lr.shape[-2:])
    with torch.no_grad():
        feat = model.encoder(x)
        full = model.head.decode(model.head.prepare(feat, x), coord, cell)
        y0, y1, x0, x1 = 4, 8, 3, 7
        u = (coord[0] + 1) * torch.tensor(size) / 2
        own = ((u[:, 0] >= y0) & (u[:, 0] < y1) & (u[:, 1] >= x0) & (u[:, 1] < x1)).nonzero()[:, 0]
        r = model.head.reach
        sl = (slice(None), slice(None), slice(y0 - r, y1 + r), slice(x0 - r, x1 + r))
        state = model.head.prepare(feat[sl], x[sl], (y0 - r, x0 - r), size)
        part = model.head.decode(state, coord[:, own], cell[:, own])
        assert (part - full[:, own]).abs().max().item() <= 1e-5
        with pytest.raises(RuntimeError, match="outside"):
            model.head.decode(state, coord, cell)
