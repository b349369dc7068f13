"""Checkpoint file formats: recognise a file from its first bytes and read ``(model_config, state_dict)``
from it without running pickled code (re-exported by :mod:`liif_sr.checkpoints`, which resolves names and
run folders and builds the model).
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from liif_sr.errors import CheckpointError
from liif_sr.models.official import official_to_ours

__all__ = ["interpret_loaded", "read_checkpoint_file", "sniff_checkpoint"]

_EXPECTED = "expected a liif-sr .ckpt/.safetensors/.pth, an official LIIF .pth or a run folder"
# (magic prefix, description) of common files that are not checkpoints
_NOT_CHECKPOINTS: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"BM", "a BMP image"),
    (b"%PDF", "a PDF document"),
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\x7fELF", "an executable"),
)


def sniff_checkpoint(path: str | os.PathLike[str]) -> str:
    """The container format of a checkpoint file from its first bytes: ``"zip"`` (``torch.save``),
    ``"pickle"`` (legacy ``torch.save``) or ``"safetensors"``.

    Raises :class:`CheckpointError` ``"<file>: not a checkpoint (a PNG image / a text file / unknown
    format)"`` for anything else, before any unpickler sees the file.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
            size = os.fstat(f.fileno()).st_size
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint: {exc.strerror or exc}") from None
    if not head:
        raise CheckpointError(f"{path}: not a checkpoint (empty file)")
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") <= size - 8:
        return "safetensors"
    what = next((d for magic, d in _NOT_CHECKPOINTS if head.startswith(magic)), None)
    if what is None and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        what = "a WebP image"
    if what is None and b"\x00" not in head:
        try:
            head.decode("utf-8")
            what = "a text file"
        except UnicodeDecodeError as exc:
            what = "a text file" if exc.start >= len(head) - 3 else None  # a character cut at 4096 bytes
    raise CheckpointError(f"{path}: not a checkpoint ({what or 'unknown format'}); {_EXPECTED}")


def _torch_load(path: Path) -> Any:
    try:
        with open(path, "rb") as f:  # a file object: torch must not pick a loader by the file name
            return torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's text: a paragraph on weights_only, then the reason, then a pointer to its documentation
        parts = [p.strip() for p in str(exc).split("\n\n") if p.strip()]
        reason = next((p for p in parts if "GLOBAL" in p or "global" in p), None)
        if reason is None:  # an opcode the weights-only unpickler refuses: damaged bytes or another protocol
            found = str(exc).split("WeightsUnpickler error:", 1)
            detail = found[1].strip().split("\n\n")[0].strip() if len(found) == 2 else type(exc).__name__
            raise CheckpointError(
                f"{path}: not a readable checkpoint: unpickling stopped ({detail}): a damaged file, or objects "
                "other than plain weights (liif-sr never executes pickled code)"
            ) from None
        reason = reason.splitlines()[-1]
        raise CheckpointError(
            f"{path}: refused to load: the file holds objects other than plain weights ({reason}); "
            "liif-sr never executes pickled code"
        ) from None
    except Exception as exc:  # any failure to parse the container (KeyError, RuntimeError, EOFError, ...)
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated or corrupt?): {msg[:200]}"
        ) from None


def read_checkpoint_file(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(model_config, state_dict)`` of one checkpoint file, as stored (no defaults filled in)."""
    if sniff_checkpoint(path) == "safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                sd = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file: {str(exc)[:200]}") from None
        if "liif_sr_config" not in meta:
            raise CheckpointError(f"{path}: safetensors file has no liif_sr_config metadata")
        try:
            return json.loads(meta["liif_sr_config"]), sd
        except ValueError:
            raise CheckpointError(f"{path}: safetensors liif_sr_config metadata is not valid JSON") from None
    return interpret_loaded(_torch_load(path), path)


def interpret_loaded(obj: Any, path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(model_config, state_dict)`` of a checkpoint object ``torch.load`` returned for ``path`` (also one
    loaded memory-mapped for another purpose, e.g. a resume's progress: :mod:`liif_sr.training.resume`)."""
    try:
        return _interpret(obj, path)
    except (KeyError, TypeError, AttributeError, IndexError) as exc:
        raise CheckpointError(
            f"{path}: malformed checkpoint ({type(exc).__name__}: {str(exc)[:120]})"
        ) from None


def _interpret(obj: Any, path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: unexpected checkpoint content ({type(obj).__name__})")
    if isinstance(obj.get("model"), dict) and "sd" in obj["model"]:
        try:
            return official_to_ours(obj["model"])
        except CheckpointError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
    if "liif_sr" in obj and "state_dict" in obj:  # our Lightning checkpoint
        sd = {k[len("net.") :]: v for k, v in obj["state_dict"].items() if k.startswith("net.")}
        return obj["liif_sr"]["model"], sd
    if obj.get("format") == "liif-sr":
        return obj["model"], obj["state_dict"]
    raise CheckpointError(f"{path}: not a liif-sr or official LIIF/LTE checkpoint (keys: {sorted(obj)[:6]})")
