"""Reading and writing model weights, safely.

Formats read by :func:`load_model` (all with ``torch.load(weights_only=True)`` or safetensors, so no
pickled code ever runs):

* liif-sr Lightning checkpoints (``*.ckpt``: ``state_dict`` with ``net.`` prefix + ``liif_sr`` model config),
* liif-sr weight files written by :func:`save_weights` (``.safetensors`` with the config in the metadata,
  or ``.pth`` ``{"format": "liif-sr", "model": config, "state_dict": ...}``),
* official LIIF and LTE checkpoints ``{"model": {"name", "args", "sd"}, "optimizer", "epoch"}``: models
  ``liif``, ``lte``, ``metasr`` with encoders ``edsr-baseline``, ``rdn``, ``swinir``
  (:mod:`liif_sr.models.official`),
* a shipped model name such as ``"edsr-baseline-liif"`` (files under ``liif_sr/weights``),
* a training run folder: its ``model.safetensors``, else ``checkpoints/last.ckpt`` (:func:`resolve_checkpoint`).

The format is recognised from the file's first bytes, not its name (:func:`sniff_checkpoint`): a file that
is no checkpoint at all (an image, a text file, ...) is reported as such in one line.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from liif_sr.checkpoint_formats import interpret_loaded, read_checkpoint_file, sniff_checkpoint
from liif_sr.errors import CheckpointError
from liif_sr.file_cache import Version
from liif_sr.models.build import build_model
from liif_sr.models.implicit_sr import ImplicitSR

__all__ = [
    "RUN_WEIGHTS",
    "SHIPPED",
    "WEIGHTS_DIR",
    "check_matches",
    "complete_config",
    "load_model",
    "read_checkpoint",
    "read_config",
    "remember_loaded_config",
    "resolve_checkpoint",
    "save_weights",
    "sniff_checkpoint",
]

WEIGHTS_DIR = Path(__file__).parent / "weights"
#: shipped model name → file in :data:`WEIGHTS_DIR`
SHIPPED: dict[str, str] = {"edsr-baseline-liif": "edsr-baseline-liif.safetensors"}
#: files a run folder's weights are taken from, in order of preference
RUN_WEIGHTS: tuple[str, ...] = ("model.safetensors", "checkpoints/last.ckpt")
_CHECKPOINT_SUFFIXES = (".ckpt", ".safetensors", ".pth", ".pt", ".bin")


def resolve_checkpoint(path_or_name: str | os.PathLike[str]) -> Path:
    """The weights file for a checkpoint file, a shipped model name or a training run folder.

    A run folder gives the first of :data:`RUN_WEIGHTS` that exists; a folder without them raises
    :class:`CheckpointError` listing what the folder holds.
    """
    key = str(path_or_name)
    if key in SHIPPED:
        path = WEIGHTS_DIR / SHIPPED[key]
        if not path.is_file():
            raise CheckpointError(f"shipped model {key!r} is missing from this installation ({path})")
        return path
    path = Path(path_or_name)
    if path.is_dir():
        for name in RUN_WEIGHTS:
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"{path}: {_describe_folder(path)}")
    if not path.is_file():
        hint = f" (shipped models: {', '.join(SHIPPED)})" if not path.suffix and len(path.parts) == 1 else ""
        what = "exists but is not a regular file" if path.exists() else "checkpoint file not found"
        raise CheckpointError(f"{path}: {what}{hint}")
    return path


def _describe_folder(path: Path) -> str:
    want = " or ".join(RUN_WEIGHTS)
    try:
        entries = sorted(p for p in path.iterdir() if not p.name.startswith("."))
        sub = path / "checkpoints"
        weights = [p for p in entries + (sorted(sub.iterdir()) if sub.is_dir() else []) if p.is_file()]
    except OSError as exc:
        return f"cannot list the folder: {exc.strerror or exc}"
    weights = [p for p in weights if p.suffix in _CHECKPOINT_SUFFIXES]
    if weights:
        names = ", ".join(p.relative_to(path).as_posix() for p in weights[:8])
        more = f" and {len(weights) - 8} more" if len(weights) > 8 else ""
        return f"a folder without {want}; pass one of its weight files instead: {names}{more}"
    if not entries:
        return f"an empty folder, not a run folder (no {want})"
    names = ", ".join(p.name + ("/" if p.is_dir() else "") for p in entries[:10])
    more = f" and {len(entries) - 10} more" if len(entries) > 10 else ""
    return f"not a run folder (no {want}); it holds: {names}{more}"


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Return ``(model_config, state_dict)`` of any supported file or run folder, without building the model.

    A config without a head name (files written before other heads existed) gets ``"name": "liif"``.
    """
    return _read_resolved(resolve_checkpoint(path))


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The model config :func:`read_checkpoint` returns, read once per version of the file in a process
    (:mod:`liif_sr.file_cache`: the start-up checks and the run ask for the same checkpoints' configs)."""
    from liif_sr.file_cache import remembered

    resolved = resolve_checkpoint(path)
    return remembered("config", resolved, lambda: _read_resolved(resolved)[0])


def _read_resolved(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    from liif_sr.file_cache import remember, version

    ver = version(path)
    config, sd = read_checkpoint_file(path)
    remember("config", path, _with_head_name(config), ver)  # a later read_config of this file reads nothing
    return config, sd


def _with_head_name(config: Any) -> Any:
    """A config without a head name (files written before other heads existed) gets ``"name": "liif"``."""
    if isinstance(config, dict) and isinstance(config.get("head"), dict):
        config["head"] = {"name": "liif", **config["head"]}
    return config


def remember_loaded_config(path: str | os.PathLike[str], obj: Any, ver: Version | None) -> None:
    """Keep the model config of ``obj``, what ``torch.load`` returned for the file ``path`` (version ``ver``)
    for another purpose (a resume's progress, :func:`liif_sr.training.resume.read_progress`): a later
    :func:`read_config` of that file reads nothing. Nothing is kept when ``obj`` is no model checkpoint."""
    from liif_sr.file_cache import remember

    try:
        config, _ = interpret_loaded(obj, Path(path))
    except CheckpointError:
        return
    remember("config", path, _with_head_name(config), ver)


def load_model(
    path_or_name: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    head_mode: str = "fast",
    expect: dict[str, Any] | None = None,
) -> ImplicitSR:
    """Load a model for inference (eval mode) from a checkpoint file or a shipped model name.

    Args:
        path_or_name: liif-sr ``.ckpt``/``.safetensors``/``.pth``, an official LIIF/LTE ``.pth``, a name in
            :data:`SHIPPED`, or a training run folder (see :func:`resolve_checkpoint`).
        device: where to put the model: ``cpu``, ``cuda[:N]``, ``mps`` or ``auto``; a device this machine
            lacks is an :class:`~liif_sr.errors.InvalidArgumentError` (one line).
        head_mode: ``"fast"`` (factorised) or ``"plain"`` (reference algorithm).
        expect: optional partial config (e.g. ``{"encoder": {"name": "rdn"}}``) that must match, else a
            :class:`CheckpointError` names the mismatch.
    """
    device = _load_device(device)
    path = resolve_checkpoint(path_or_name)
    config, sd = _read_resolved(path)  # resolved once
    try:
        model = build_model(config, head_mode=head_mode)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    if expect:  # the built model's config: an official file's omitted defaults (res_scale, D, C, G) filled in
        _check_expected(model.config, expect, path)
    have, want = set(sd), set(model.state_dict())
    if have != want:
        parts = [
            f"{what} {', '.join(sorted(keys)[:4])}" + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")
            for what, keys in (("unexpected keys", have - want), ("missing keys", want - have))
            if keys
        ]
        raise CheckpointError(f"{path}: weights do not match the model config: {'; '.join(parts)}")
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = next((ln for ln in lines if "size mismatch" in ln), lines[1] if len(lines) > 1 else lines[0])
        raise CheckpointError(f"{path}: weights do not match the model config: {detail[:240]}") from None
    return model.to(device).eval()


def _load_device(device: str | torch.device) -> torch.device:
    """``load_model``'s ``device`` (``auto``, ``cpu``, ``cuda[:N]``, ``mps``), refused in one line when this
    machine lacks it (:func:`liif_sr.inference.devices.resolve_device`)."""
    from liif_sr.errors import InvalidArgumentError, UserError
    from liif_sr.inference.devices import resolve_device

    try:
        return resolve_device(str(device), option="device=")
    except UserError as exc:
        raise InvalidArgumentError(f"load_model: {exc}") from None


def _check_expected(config: dict[str, Any], expect: dict[str, Any], path: Path, prefix: str = "") -> None:
    for k, v in expect.items():
        have = config.get(k) if isinstance(config, dict) else None
        if isinstance(v, dict) and isinstance(have, dict):
            _check_expected(have, v, path, f"{prefix}{k}.")
        elif have != v:
            raise CheckpointError(f"{path}: checkpoint has {prefix}{k}={have!r}, expected {v!r}")


def save_weights(model: ImplicitSR, path: str | os.PathLike[str], half: bool = False) -> Path:
    """Write weights only (``.safetensors`` with config metadata, or a plain ``.pth``), atomically."""
    path = Path(path)
    sd = {
        k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
        for k, v in model.state_dict().items()
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(sd, tmp, metadata={"liif_sr_config": json.dumps(model.config), "format": "liif-sr"})
        else:
            torch.save({"format": "liif-sr", "model": model.config, "state_dict": sd}, tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 → the mode of any new file (0644 by default)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def complete_config(config: dict[str, Any]) -> dict[str, Any]:
    """The full :attr:`ImplicitSR.config` of the model that ``config`` builds: the arguments a file omits (an
    official checkpoint names only what its YAML set, e.g. no ``res_scale``) get the class defaults.

    Built on the ``meta`` device (no weights allocated); encoders that compute buffers at init are built
    on the CPU."""
    try:
        with torch.device("meta"):
            return build_model(config).config
    except CheckpointError:
        raise
    except Exception:  # noqa: BLE001 - e.g. SwinIR's attention masks: build it for real
        return build_model(config).config


def check_matches(path: str | os.PathLike[str], config: dict[str, Any]) -> None:
    """Raise :class:`CheckpointError` naming the first difference between a checkpoint's model and ``config``
    (compared with the checkpoint's defaults filled in, :func:`complete_config`)."""
    have = read_config(path)
    try:
        have = complete_config(have)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    _check_expected(have, config, Path(path))
