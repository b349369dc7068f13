"""Compiling and caching the C kernels (:func:`load`); see :mod:`liif_sr.kernels`."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import logging
import os
import platform
import shlex
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

CSRC = Path(__file__).resolve().parent / "csrc"
FLAGS = ("-O3", "-march=native", "-shared", "-fPIC", "-std=c11")
LIBS = ("-lm",)
BUILD_TIMEOUT_S = 300


def cache_dir() -> Path:
    """``$LIIF_SR_KERNEL_CACHE`` or ``~/.cache/liif_sr/kernels``."""
    env = os.environ.get("LIIF_SR_KERNEL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "liif_sr" / "kernels"


def source_files(name: str, csrc: Path | None = None) -> list[Path]:
    """The kernel's ``<name>.c`` and every header of its folder (what the cache key hashes)."""
    csrc = csrc or CSRC
    return [csrc / f"{name}.c", *sorted(csrc.glob("*.h"))]


def _compiler() -> list[str]:
    return shlex.split(os.environ.get("CC") or "cc")


def _cpu_id() -> str:
    """The CPU the binary is tuned for (``-march=native``): the ``flags`` line of /proc/cpuinfo + the machine."""
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = line
                break
    except OSError:
        pass
    return f"{platform.machine()}|{flags}"


def cache_key(name: str, cc: list[str], flags: tuple[str, ...] = FLAGS, csrc: Path | None = None) -> str:
    """Hash of the sources, the compiler's ``--version``, the flags and the CPU (raises OSError without a
    compiler, subprocess.CalledProcessError when ``--version`` fails)."""
    version = subprocess.run(
        [*cc, "--version"], capture_output=True, check=True, timeout=60, text=True
    ).stdout
    digest = hashlib.sha256()
    for part in (name, " ".join(cc), version, " ".join(flags + LIBS), _cpu_id()):
        digest.update(part.encode() + b"\0")
    for path in source_files(name, csrc):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:20]


def compile_kernel(name: str, flags: tuple[str, ...] = FLAGS, csrc: Path | None = None) -> Path:
    """The cached shared library of ``csrc/<name>.c`` (built now if absent). Raises on any failure."""
    cc, csrc = _compiler(), csrc or CSRC
    source = csrc / f"{name}.c"
    if not source.is_file():
        raise FileNotFoundError(f"no kernel source {source}")
    folder = cache_dir()
    target = folder / f"{name}-{cache_key(name, cc, flags, csrc)}.so"
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".so", dir=folder)
    os.close(fd)
    try:
        done = subprocess.run(
            [*cc, *flags, "-I", str(csrc), "-o", tmp, str(source), *LIBS],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
        )
        if done.returncode != 0:
            first = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[0]
            raise RuntimeError(f"{' '.join(cc)} failed: {first}")
        os.replace(tmp, target)  # atomic: a parallel build of the same key writes the same bytes
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


_OFF = 0  # depth of :func:`disabled` blocks
_OFF_LOGGED: set[str] = set()


def _off_reason() -> str | None:
    """What turns the kernels off now (:func:`disabled`, ``LIIF_SR_KERNELS``), or None."""
    if _OFF:
        return "liif_sr.kernels.disabled()"
    value = os.environ.get("LIIF_SR_KERNELS", "1").strip()
    return f"LIIF_SR_KERNELS={value}" if value.lower() in ("0", "false", "no", "off") else None


def enabled() -> bool:
    """False under ``LIIF_SR_KERNELS=0`` or within :func:`disabled` (read at every call)."""
    return _off_reason() is None


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Within the block :func:`load` answers None, as with ``LIIF_SR_KERNELS=0`` (process-wide; for
    benchmarks timing the PyTorch paths against the kernels in one run, and tests)."""
    global _OFF
    _OFF += 1
    try:
        yield
    finally:
        _OFF -= 1


def load(name: str) -> ctypes.CDLL | None:
    """The compiled kernel ``name`` (cached per process), or None with one log line per kernel and process
    saying why: INFO when it is off on purpose (``LIIF_SR_KERNELS=0``, read at every call, or :func:`disabled`);
    WARNING, with the fix, when it cannot be built or loaded (no compiler, a failed build, an unusable cache:
    :func:`unavailable_message`), since callers load a kernel only when their decode would use it. Never
    raises for those."""
    reason = _off_reason()
    if reason is not None:
        if name not in _OFF_LOGGED:
            _OFF_LOGGED.add(name)
            log.info("liif_sr kernel %r off: %s; using the PyTorch path", name, reason)
        return None
    return _load_built(name)


@functools.cache
def _load_built(name: str) -> ctypes.CDLL | None:
    try:
        path = compile_kernel(name, csrc=CSRC)
        try:
            return ctypes.CDLL(str(path))
        except OSError:  # an unloadable cached file (e.g. truncated by a full disk): rebuild it once
            path.unlink(missing_ok=True)
            return ctypes.CDLL(str(compile_kernel(name, csrc=CSRC)))
    except (OSError, RuntimeError, subprocess.SubprocessError, ValueError) as err:
        # a decode that would use the kernel runs slower: one WARNING per kernel and process (functools.cache);
        # deliberately off (LIIF_SR_KERNELS=0, disabled()) stays an INFO line (load)
        log.warning("%s", unavailable_message(name, err))
        return None


def unavailable_message(name: str, err: BaseException) -> str:
    """One line: why kernel ``name`` could not be built or loaded (``err``), that the slower PyTorch path runs,
    and what would fix it."""
    why, fix = _diagnose(err)
    return (
        f"liif_sr C kernel {name!r} unavailable: {why}; decoding on the slower PyTorch path. Fix: {fix} "
        "(LIIF_SR_KERNELS=0: the PyTorch path without this warning)"
    )


def _diagnose(err: BaseException) -> tuple[str, str]:
    """(what went wrong, what fixes it) for an error of :func:`compile_kernel` or of loading its library."""
    cc = " ".join(_compiler())
    reason = " ".join(str(err).split())[:300]
    working = "set CC to a working C compiler (gcc or clang)"
    filename = getattr(err, "filename", None)
    if isinstance(err, FileNotFoundError) and filename == _compiler()[0]:
        return f"no C compiler ({cc!r} not found)", "install a C compiler (cc/gcc) or set CC to one"
    if isinstance(err, subprocess.TimeoutExpired):
        return f"the C compiler {cc!r} timed out", working
    if isinstance(err, subprocess.CalledProcessError):
        return f"the C compiler {cc!r} does not run (exit status {err.returncode})", working
    if isinstance(err, RuntimeError):
        return f"the build failed ({reason})", working
    if isinstance(err, OSError) and filename is not None and _in_cache(Path(str(filename))):
        return f"the kernel cache is not usable ({reason})", "set LIIF_SR_KERNEL_CACHE to a writable folder"
    if isinstance(err, FileNotFoundError) and str(err).startswith("no kernel source"):
        return reason, "reinstall liif-sr (its kernel sources are missing)"
    return reason, "install a C compiler (cc/gcc) or set CC to one"


def _in_cache(path: Path) -> bool:
    """``path`` is the cache folder, inside it or one of its parents (``mkdir`` failed on the way)."""
    folder = cache_dir().absolute()
    path = path.absolute()
    return path.is_relative_to(folder) or folder.is_relative_to(path)


def reset() -> None:
    """Forget the loaded kernels and the logged reasons, as a new process would (tests)."""
    _load_built.cache_clear()
    _OFF_LOGGED.clear()


def available(name: str) -> bool:
    """Whether :func:`load` gives the kernel (builds it on the first call)."""
    return load(name) is not None
