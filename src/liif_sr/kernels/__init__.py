"""Optional C kernels (minimal stand-in: the integrator keeps the "lmkernel" helper's version of this module).

``load(name)`` compiles ``csrc/<name>.c`` with ``$CC``/``cc`` (``-O3 -march=native -shared -fPIC -std=c11``),
caches the library under ``$LIIF_SR_KERNEL_CACHE`` (default ``~/.cache/liif_sr/kernels``) keyed by the sources,
the compiler version, the flags and the CPU flags, and returns a ``ctypes.CDLL``, or None (logged once at INFO)
when ``LIIF_SR_KERNELS=0``, no compiler is found or the build fails.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)
_CSRC = Path(__file__).parent / "csrc"
FLAGS = ["-O3", "-march=native", "-shared", "-fPIC", "-std=c11"]
_LOADED: dict[str, ctypes.CDLL | None] = {}


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return ""


def _build(name: str) -> ctypes.CDLL | None:
    if os.environ.get("LIIF_SR_KERNELS", "1") == "0":
        log.info("liif_sr kernels disabled (LIIF_SR_KERNELS=0): %s uses the torch path", name)
        return None
    cc = os.environ.get("CC") or "cc"
    if shutil.which(cc) is None:
        log.info("no C compiler (%s): kernel %s unavailable, the torch path runs", cc, name)
        return None
    sources = sorted(_CSRC.glob("*.h")) + [_CSRC / f"{name}.c"]
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True, check=True).stdout
        digest = hashlib.sha256()
        for part in [*(p.read_bytes() for p in sources), version.encode(), " ".join(FLAGS).encode()]:
            digest.update(part)
        digest.update(_cpu_flags().encode())
        cache = Path(os.environ.get("LIIF_SR_KERNEL_CACHE", Path.home() / ".cache" / "liif_sr" / "kernels"))
        cache.mkdir(parents=True, exist_ok=True)
        lib = cache / f"{name}-{digest.hexdigest()[:16]}.so"
        if not lib.exists():
            with tempfile.TemporaryDirectory(dir=cache) as tmp:
                out = Path(tmp) / lib.name
                subprocess.run(
                    [cc, *FLAGS, "-I", str(_CSRC), str(_CSRC / f"{name}.c"), "-o", str(out), "-lm"],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                os.replace(out, lib)
        return ctypes.CDLL(str(lib))
    except (OSError, subprocess.CalledProcessError) as err:
        detail = getattr(err, "stderr", "") or str(err)
        log.info("kernel %s failed to build, the torch path runs: %s", name, detail.strip()[:500])
        return None


def load(name: str) -> ctypes.CDLL | None:
    """The compiled kernel ``name`` (cached per process), or None when kernels are unavailable."""
    if name not in _LOADED:
        _LOADED[name] = _build(name)
    return _LOADED[name]


def available(name: str) -> bool:
    """Whether :func:`load` gives a library for ``name``."""
    return load(name) is not None
