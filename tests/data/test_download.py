"""Offline tests of ``liif-sr download`` against a local HTTP server that supports (or misbehaves on) Range."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
import socket
import struct
import tarfile
import threading
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from liif_sr.cli import main
from liif_sr.data.download.manifest import DATASETS, dataset_root, require_dataset
from liif_sr.errors import DatasetMissingError


@dataclass
class ServerState:
    """What the test server serves and how; every request's (path, Range header) is recorded."""

    files: dict[str, bytes] = field(default_factory=dict)
    mode: str = "normal"  # normal | cut_once | corrupt | ignore_range
    cut_after: int = 0
    cut_done: bool = False
    requests: list[tuple[str, str | None]] = field(default_factory=list)


class Server:
    def __init__(self, state: ServerState, port: int) -> None:
        self.state = state
        self.base = f"http://127.0.0.1:{port}/"

    def requests_for(self, name: str) -> list[str | None]:
        return [rng for path, rng in self.state.requests if path == name]


def _make_handler(state: ServerState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            name = self.path.lstrip("/")
            rng = self.headers.get("Range")
            state.requests.append((name, rng))
            data = state.files.get(name)
            if data is None:
                self.send_error(404)
                return
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", rng or "")
            if match and state.mode != "ignore_range":
                start = int(match.group(1))
                if start >= len(data):
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            if state.mode == "corrupt":
                body = body[:-1] + bytes([body[-1] ^ 0xFF])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if state.mode == "cut_once" and not state.cut_done:
                state.cut_done = True
                self.wfile.write(body[: state.cut_after])
                self.close_connection = True
                return
            self.wfile.write(body)

    return Handler


@pytest.fixture
def server() -> Iterator[Server]:
    state = ServerState()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(state))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield Server(state, httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()


def _png(width: int, height: int, seed: int) -> bytes:
    """A valid RGB PNG of random (incompressible) pixels, written with the standard library only."""
    rnd = random.Random(seed)
    raw = b"".join(b"\x00" + rnd.randbytes(width * 3) for _ in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _div2k_archives() -> dict[str, tuple[bytes, str, str]]:
    """filename -> (archive bytes, extract_to, target): the real zips' layout, two tiny images each."""
    hr = {f"DIV2K_valid_HR/{i:04d}.png": _png(24, 24, i) for i in (801, 802)}
    out = {"DIV2K_valid_HR.zip": (_zip(hr), "div2k", "div2k/DIV2K_valid_HR")}
    for s in (2, 3):
        lr = {
            f"DIV2K_valid_LR_bicubic/X{s}/{i:04d}x{s}.png": _png(24 // s, 24 // s, i + s) for i in (801, 802)
        }
        out[f"DIV2K_valid_LR_bicubic_X{s}.zip"] = (_zip(lr), "div2k", f"div2k/DIV2K_valid_LR_bicubic/X{s}")
    return out


def _benchmark_archive() -> bytes:
    members = {}
    for name in ("Set5", "Set14"):
        members[f"benchmark/{name}/HR/baby.png"] = _png(12, 12, len(name))
        for s in (2, 3):
            members[f"benchmark/{name}/LR_bicubic/X{s}/babyx{s}.png"] = _png(12 // s, 12 // s, s)
    return _tar(members)


def _publish(
    server: Server,
    tmp_path: Path,
    archives: dict[str, tuple[bytes, str, str]],
    name: str,
    hashes: bool = True,
) -> Path:
    """Serve ``archives`` and write a manifest JSON whose URLs point at a fake host (use --base-url)."""
    files = []
    for filename, (data, extract_to, target) in archives.items():
        server.state.files[filename] = data
        files.append(
            {
                "url": f"https://example.invalid/some/dir/{filename}",
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest() if hashes else None,
                "extract_to": extract_to,
                "target": target,
            }
        )
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({name: {"title": name.upper(), "files": files}}))
    return manifest


def _run(server: Server, manifest: Path, root: Path, *extra: str, dataset: str = "div2k") -> int:
    argv = ["download", dataset, "--root", str(root), "--manifest", str(manifest), "--timeout", "5"]
    return main([*argv, "--base-url", server.base, *extra])


def _tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


EXPECTED_DIV2K = {
    "div2k/DIV2K_valid_HR/0801.png",
    "div2k/DIV2K_valid_HR/0802.png",
    "div2k/DIV2K_valid_HR.complete",
    "div2k/DIV2K_valid_LR_bicubic/X2/0801x2.png",
    "div2k/DIV2K_valid_LR_bicubic/X2/0802x2.png",
    "div2k/DIV2K_valid_LR_bicubic/X2.complete",
    "div2k/DIV2K_valid_LR_bicubic/X3/0801x3.png",
    "div2k/DIV2K_valid_LR_bicubic/X3/0802x3.png",
    "div2k/DIV2K_valid_LR_bicubic/X3.complete",
}


def test_div2k_download_layout_markers_and_skip(server: Server, tmp_path: Path, capsys) -> None:
    archives = _div2k_archives()
    manifest = _publish(server, tmp_path, archives, "div2k")
    root = tmp_path / "data"
    assert _run(server, manifest, root) == 0
    assert _tree(root) == EXPECTED_DIV2K  # archives and temporary folders are gone
    marker = root / "div2k/DIV2K_valid_HR.complete"
    assert marker.read_text().strip() == hashlib.sha256(archives["DIV2K_valid_HR.zip"][0]).hexdigest()
    assert (root / "div2k/DIV2K_valid_HR/0801.png").read_bytes() == _png(24, 24, 801)
    assert {p for p, _ in server.state.requests} == set(archives)

    server.state.requests.clear()
    capsys.readouterr()
    assert _run(server, manifest, root) == 0
    assert server.state.requests == []
    assert "already complete" in capsys.readouterr().out


def test_benchmark_tar_layout_with_base_url_from_env(server: Server, tmp_path: Path, monkeypatch) -> None:
    data = _benchmark_archive()
    manifest = _publish(server, tmp_path, {"benchmark.tar": (data, "", "benchmark")}, "benchmark")
    monkeypatch.setenv("LIIF_SR_DOWNLOAD_BASE", server.base)
    monkeypatch.setenv("LIIF_SR_DATA_DIR", str(tmp_path / "envroot"))
    assert main(["download", "benchmark", "--manifest", str(manifest), "--keep-archives"]) == 0
    root = tmp_path / "envroot"
    assert (root / "benchmark/Set5/HR/baby.png").is_file()
    assert (root / "benchmark/Set14/LR_bicubic/X3/babyx3.png").is_file()
    assert (root / "benchmark.complete").is_file()
    assert (root / "downloads/benchmark.tar").read_bytes() == data  # --keep-archives


def test_interrupted_transfer_is_resumed_with_range(server: Server, tmp_path: Path) -> None:
    archives = {"DIV2K_valid_HR.zip": _div2k_archives()["DIV2K_valid_HR.zip"]}
    manifest = _publish(server, tmp_path, archives, "div2k")
    server.state.mode, server.state.cut_after = "cut_once", 1000
    assert _run(server, manifest, tmp_path / "data") == 0
    assert server.requests_for("DIV2K_valid_HR.zip") == [None, "bytes=1000-"]
    assert (tmp_path / "data/div2k/DIV2K_valid_HR/0802.png").read_bytes() == _png(24, 24, 802)
    assert (tmp_path / "data/div2k/DIV2K_valid_HR.complete").is_file()


def test_partial_file_from_an_earlier_run_is_resumed(server: Server, tmp_path: Path) -> None:
    data = _div2k_archives()["DIV2K_valid_HR.zip"][0]
    manifest = _publish(
        server, tmp_path, {"DIV2K_valid_HR.zip": (data, "div2k", "div2k/DIV2K_valid_HR")}, "d"
    )
    (tmp_path / "data/downloads").mkdir(parents=True)
    (tmp_path / "data/downloads/DIV2K_valid_HR.zip.part").write_bytes(data[:777])
    assert _run(server, manifest, tmp_path / "data", dataset="d") == 0
    assert server.requests_for("DIV2K_valid_HR.zip") == ["bytes=777-"]
    assert (tmp_path / "data/div2k/DIV2K_valid_HR/0801.png").is_file()


def test_server_ignoring_range_restarts_from_zero(server: Server, tmp_path: Path, capsys) -> None:
    data = _div2k_archives()["DIV2K_valid_HR.zip"][0]
    manifest = _publish(
        server, tmp_path, {"DIV2K_valid_HR.zip": (data, "div2k", "div2k/DIV2K_valid_HR")}, "d"
    )
    (tmp_path / "data/downloads").mkdir(parents=True)
    (tmp_path / "data/downloads/DIV2K_valid_HR.zip.part").write_bytes(b"\0" * 500)  # garbage prefix
    server.state.mode = "ignore_range"
    assert _run(server, manifest, tmp_path / "data", dataset="d") == 0
    assert server.requests_for("DIV2K_valid_HR.zip") == ["bytes=500-"]  # one request: no retry needed
    assert "restarting from 0" in capsys.readouterr().out
    assert (tmp_path / "data/div2k/DIV2K_valid_HR.complete").is_file()


def test_corrupt_download_is_retried_then_fails_clearly(server: Server, tmp_path: Path, capsys) -> None:
    data = _div2k_archives()["DIV2K_valid_HR.zip"][0]
    manifest = _publish(
        server, tmp_path, {"DIV2K_valid_HR.zip": (data, "div2k", "div2k/DIV2K_valid_HR")}, "d"
    )
    server.state.mode = "corrupt"
    root = tmp_path / "data"
    assert _run(server, manifest, root, "--retries", "1", dataset="d") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "checksum mismatch for DIV2K_valid_HR.zip" in err
    assert hashlib.sha256(data).hexdigest() in err
    bad = data[:-1] + bytes([data[-1] ^ 0xFF])
    assert hashlib.sha256(bad).hexdigest() in err
    assert len(server.requests_for("DIV2K_valid_HR.zip")) == 2
    assert not (root / "div2k/DIV2K_valid_HR").exists()
    assert not list(root.rglob("*.complete")) and not list(root.rglob("*.part"))


def test_folder_without_marker_is_cleaned_and_reextracted(server: Server, tmp_path: Path) -> None:
    archives = _div2k_archives()
    manifest = _publish(server, tmp_path, archives, "div2k")
    stale = tmp_path / "data/div2k/DIV2K_valid_HR/stale.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half-extracted")
    assert _run(server, manifest, tmp_path / "data") == 0
    assert _tree(tmp_path / "data") == EXPECTED_DIV2K


@pytest.mark.parametrize(
    ("filename", "archive"),
    [
        ("evil.zip", _zip({"div2k_evil/ok.png": b"x", "../escaped.png": b"x"})),
        ("evil.tar", _tar({"div2k_evil/ok.png": b"x", "/tmp/liif_sr_absolute.png": b"x"})),
    ],
)
def test_unsafe_archive_members_are_refused(
    server: Server, tmp_path: Path, capsys, filename: str, archive: bytes
) -> None:
    manifest = _publish(server, tmp_path, {filename: (archive, "", "div2k_evil")}, "evil")
    root = tmp_path / "data"
    assert _run(server, manifest, root, dataset="evil") == 2
    assert "unsafe member path" in capsys.readouterr().err
    assert not (root / "div2k_evil").exists() and not (root / "div2k_evil.complete").exists()
    assert not (tmp_path / "escaped.png").exists() and not (root / "escaped.png").exists()
    assert not [p for p in root.iterdir() if p.name.endswith(".extracting")]


def test_size_only_when_no_checksum(server: Server, tmp_path: Path, capsys) -> None:
    archives = {"DIV2K_valid_HR.zip": _div2k_archives()["DIV2K_valid_HR.zip"]}
    manifest = _publish(server, tmp_path, archives, "div2k", hashes=False)
    assert _run(server, manifest, tmp_path / "data") == 0
    assert "could not verify the hash" in capsys.readouterr().out
    assert (tmp_path / "data/div2k/DIV2K_valid_HR.complete").is_file()


def test_network_failure_is_one_line_naming_the_url(tmp_path: Path, capsys) -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = Server(ServerState(), port)
    manifest = _publish(dead, tmp_path, _div2k_archives(), "div2k")
    assert _run(dead, manifest, tmp_path / "data", "--retries", "0") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"http://127.0.0.1:{port}/DIV2K_valid_HR.zip" in err and "--base-url" in err and "resume" in err


def test_http_404_names_the_url(server: Server, tmp_path: Path, capsys) -> None:
    manifest = _publish(server, tmp_path, _div2k_archives(), "div2k")
    server.state.files.clear()
    assert _run(server, manifest, tmp_path / "data") == 2
    assert "HTTP 404" in capsys.readouterr().err


def test_require_dataset_and_dataset_root(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(DatasetMissingError) as info:
        require_dataset(Path("data/div2k/DIV2K_train_HR"), "div2k")
    assert (
        str(info.value)
        == "DIV2K not found at data/div2k/DIV2K_train_HR: run `liif-sr download div2k --root data`"
    )
    with pytest.raises(DatasetMissingError, match=r"liif-sr download benchmark --root"):
        require_dataset(tmp_path / "benchmark/Set5/HR", "Set5")
    present = tmp_path / "benchmark/Set5/HR"
    present.mkdir(parents=True)
    (present / "baby.png").write_bytes(_png(4, 4, 0))
    require_dataset(present, "benchmark")
    assert dataset_root("div2k", tmp_path) == tmp_path / "div2k"
    monkeypatch.setenv("LIIF_SR_DATA_DIR", str(tmp_path / "x"))
    assert dataset_root("urban100") == tmp_path / "x/benchmark"


def test_builtin_manifest_is_well_formed() -> None:
    div2k = {f.filename: f for f in DATASETS["div2k"].files}
    assert len(div2k) == 8
    assert div2k["DIV2K_train_LR_bicubic_X4.zip"].target == "div2k/DIV2K_train_LR_bicubic/X4"
    for spec in (*DATASETS["div2k"].files, *DATASETS["benchmark"].files):
        assert spec.url.endswith("/" + spec.filename) and spec.size and spec.size > 0
        assert spec.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", spec.sha256)


@pytest.mark.parametrize(
    "url",
    ["not-a-url", "ftp://example.org/data", "", "http://", "file:///tmp/x", "example.org/data"],
)
def test_bad_base_url_is_one_line(server: Server, tmp_path: Path, capsys, url: str) -> None:
    """#14 class 3: ``--base-url not-a-url`` (and other schemes, empty) printed a traceback."""
    manifest = _publish(server, tmp_path, _div2k_archives(), "div2k")
    argv = ["download", "div2k", "--root", str(tmp_path / "data"), "--manifest", str(manifest)]
    assert main([*argv, "--base-url", url]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == f"liif-sr download: error: --base-url {url!r}: expected an http:// or https:// URL such as https://host/dir"
    )
    assert server.state.requests == [] and not (tmp_path / "data").exists()


def test_bad_base_url_from_env_is_one_line(server: Server, tmp_path: Path, capsys, monkeypatch) -> None:
    manifest = _publish(server, tmp_path, _div2k_archives(), "div2k")
    monkeypatch.setenv("LIIF_SR_DOWNLOAD_BASE", "nope")
    assert main(["download", "div2k", "--root", str(tmp_path / "d"), "--manifest", str(manifest)]) == 2
    assert "$LIIF_SR_DOWNLOAD_BASE 'nope': expected an http://" in capsys.readouterr().err


def test_root_that_cannot_be_created_or_written_is_one_line(server: Server, tmp_path: Path, capsys) -> None:
    """#14 class 3: ``--root /proc/nope`` printed a traceback; a file in the way, too."""
    manifest = _publish(server, tmp_path, _div2k_archives(), "div2k")
    (tmp_path / "a_file").write_text("x")
    for root in ("/proc/nope", str(tmp_path / "a_file"), str(tmp_path / "a_file" / "sub")):
        assert _run(server, manifest, Path(root)) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert err.startswith(f"liif-sr download: error: --root {root}: cannot create the data folder ("), err
    assert server.state.requests == []
    if os.geteuid() != 0:  # root may write anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            assert _run(server, manifest, ro) == 2
            assert f"--root {ro}: the data folder is not writable" in capsys.readouterr().err
        finally:
            ro.chmod(0o700)


def test_only_matching_nothing_creates_no_root(server: Server, tmp_path: Path, capsys) -> None:
    """Issue 18 class 2: ``--only 'nomatch*'`` left an empty data root behind."""
    manifest = _publish(server, tmp_path, _div2k_archives(), "div2k")
    for root in (tmp_path / "data", tmp_path / "deep" / "data"):
        assert _run(server, manifest, root, "--only", "nomatch*") == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--only nomatch* matches no file of" in err, err
        assert not root.exists() and not (tmp_path / "deep").exists()
    assert server.state.requests == []
