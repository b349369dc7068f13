"""Crash-safe checkpoint files (``docs/resume.md``).

:class:`AtomicCheckpointIO`: temp file beside the target + fsync + ``os.replace`` (never half a file), with a
``<name>.sha256`` sidecar (:mod:`liif_sr.training.integrity`);
:func:`trainer_plugins` adds it to the trainer's plugins.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.checkpoint_io import CheckpointIO
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from liif_sr.training import integrity

# tests only: seconds to sleep between writing the temp file and renaming it (to SIGKILL a process mid-write)
SLOW_WRITE_ENV = "LIIF_SR_TEST_SLOW_CKPT_WRITE"


def is_local(path: Any) -> bool:
    return "://" not in str(path) or str(path).startswith("file://")


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` into ``.<name>.<pid>.tmp`` beside the target, ``fsync``, ``os.replace``, ``fsync`` the dir.

    Lightning 2.6's ``TorchCheckpointIO`` (``cloud_io._atomic_save``) serialises into memory and then uses an
    fsspec transaction, which for local paths writes a ``tempfile.mkstemp()`` file in the *system* temp dir
    and ``shutil.move``-s it: a copy + delete (not atomic) whenever /tmp is another filesystem, no fsync, and a
    stray temp file in /tmp after a kill. Remote (fsspec URL) paths still go through Lightning's code.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not support storage_options")
        if not is_local(path):
            return super().save_checkpoint(checkpoint, path)
        path = Path(str(path).removeprefix("file://"))
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in [
            *path.parent.glob(f".{path.name}.*.tmp"),
            *path.parent.glob(f".{path.name}.sha256.*.tmp"),
        ]:  # left by a process killed mid-write
            stale.unlink(missing_ok=True)
        tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            delay = float(os.environ.get(SLOW_WRITE_ENV) or 0)
            if delay > 0:
                time.sleep(delay)
            if not with_sidecar(path):
                os.replace(tmp, path)
                _fsync_dir(path.parent)
                return None
            new = integrity.file_sha256(tmp)
            # the sidecar accepts the old and the new file while the rename is pending (a kill in between)
            old = integrity.recorded(path) or ([integrity.digest(path)] if path.is_file() else [])
            integrity.write_sidecar(path, [new, *sorted(old)])
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        integrity.write_sidecar(path, [new])
        _fsync_dir(path.parent)
        return None

    def remove_checkpoint(self, path: Any) -> None:
        super().remove_checkpoint(path)
        if is_local(path):
            integrity.sidecar(str(path).removeprefix("file://")).unlink(missing_ok=True)


def with_sidecar(path: Path) -> bool:
    """Whether a checkpoint gets a ``.sha256`` sidecar: all but Lightning's SLURM ``hpc_ckpt_<n>.ckpt``.

    Lightning numbers those from the digits of every file name in the run folder containing ``ckpt_``
    (``hpc_ckpt_1.ckpt.sha256`` would read as version 1256 and the requeued job would look for
    ``hpc_ckpt_1256.ckpt``); they are written atomically like the others, but not verified."""
    return not path.name.startswith("hpc_ckpt")


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def trainer_plugins(trainer_cfg: Any) -> list[Any]:
    """``trainer.plugins`` of the config (instantiated) plus :class:`AtomicCheckpointIO` unless one is a CheckpointIO."""
    from hydra.utils import instantiate

    raw = trainer_cfg.get("plugins") if trainer_cfg is not None else None
    if raw is None:
        plugins: list[Any] = []
    else:
        made = instantiate(raw, _convert_="all")
        plugins = list(made) if isinstance(made, list | tuple) else [made]
    if not any(isinstance(p, CheckpointIO) for p in plugins):
        plugins.append(AtomicCheckpointIO())
    return plugins
