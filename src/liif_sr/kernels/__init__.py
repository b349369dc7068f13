"""Small C kernels for CPU inference hot loops, compiled on first use (no torch headers, no build step).

:func:`load` compiles ``csrc/<name>.c`` (plain C11; it may include ``common.h`` from the same folder) with the
system C compiler (``$CC`` or ``cc``) and ``-O3 -march=native -shared -fPIC -std=c11`` (no ``-ffast-math``, no
OpenMP) into a cache folder (``$LIIF_SR_KERNEL_CACHE``, default ``~/.cache/liif_sr/kernels``), one file per
hash of the sources, the compiler's ``--version``, the flags and the CPU, written atomically (parallel
processes are safe). It returns ``None`` when kernels are disabled (``LIIF_SR_KERNELS=0``, :func:`disabled`:
one INFO line), there is no compiler or the build fails (one WARNING line per kernel and process naming the
reason and the fix; ``liif-sr`` prints it as its own ``warning:`` line): callers then take their PyTorch path.

Kernels take raw pointers (``tensor.data_ptr()``) and int64 sizes; each kernel's Python wrapper checks dtype,
device and contiguity once at its entry. The C code is single-threaded; :func:`parallel_rows` splits rows
over ``torch.get_num_threads()`` Python threads (ctypes releases the GIL during a call).
"""

from __future__ import annotations

from liif_sr.kernels.build import available, cache_dir, disabled, enabled, load, source_files
from liif_sr.kernels.parallel import parallel_rows

__all__ = ["available", "cache_dir", "disabled", "enabled", "load", "parallel_rows", "source_files"]
