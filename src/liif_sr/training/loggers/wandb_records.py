"""Read an offline W&B run file (``<run>/wandb/offline-run-*/run-<id>.wandb``) back: run, config, history,
summary, exit code — what a sweep logged, compared without uploading anything (tests and
``scripts/sweep_demo.py`` read records this way). The file is LevelDB-log framed protobufs: a 7-byte header,
32 KiB blocks, 7-byte record headers ``<crc32, length, type>``."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class WandbRecords:
    """One offline run file's records (the last value of each config / summary key)."""

    name: str = ""
    group: str = ""
    run_id: str = ""
    config: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    exit_code: int | None = None

    def steps_of(self, key: str) -> list:
        """``trainer/global_step`` of every history row holding ``key``."""
        return [row.get("trainer/global_step") for row in self.history if key in row]


def _records(run_file: Path) -> Iterator[Any]:
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, chunk, block = run_file.read_bytes(), 7, b"", 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer: zero padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk, pos = chunk + data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # FULL or LAST part of a record
            record = pb.Record()
            record.ParseFromString(chunk)
            chunk = b""
            yield record


def read_run(run_file: Path) -> WandbRecords:
    """The records of one ``run-<id>.wandb`` file."""
    out = WandbRecords()
    for record in _records(run_file):
        which = record.WhichOneof("record_type")
        if which == "run":
            out.name, out.group, out.run_id = record.run.display_name, record.run.run_group, record.run.run_id
        elif which in ("config", "summary"):
            target = out.config if which == "config" else out.summary
            for item in getattr(record, which).update:
                target[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        elif which == "history":
            out.history.append(
                {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
            )
        elif which == "exit":
            out.exit_code = record.exit.exit_code
    return out


def read_job(run_dir: Path) -> WandbRecords:
    """The (last) offline W&B run of a run folder."""
    files = run_files(run_dir)
    if not files:
        raise FileNotFoundError(f"no offline W&B run in {run_dir}")
    return read_run(files[-1])


def run_files(run_dir: Path) -> list[Path]:
    """The offline W&B run files of a run folder, oldest segment first (one per resumed segment)."""
    return sorted(Path(run_dir).glob("wandb/offline-run-*/run-*.wandb"), key=lambda p: p.parent.name)
