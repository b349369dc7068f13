"""``liif-sr`` command line: one sub-command per module, each registered by ``register(subparsers)``.

Sub-command modules are imported lazily so that ``liif-sr --help`` stays fast (no torch/lightning import).
Every sub-command handler returns an exit code; errors that are the user's (bad input, missing files)
are raised as :class:`liif_sr.errors.UserError` and printed as one line without a traceback unless
``--debug`` is given. A C kernel the command's decode would use but cannot build (no compiler, a failed build:
:mod:`liif_sr.kernels`) is one ``liif-sr <command>: warning: ...`` line per kernel (:func:`kernel_warnings`).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import sys
from collections.abc import Iterator, Sequence

from liif_sr.errors import UserError, report_user_error

#: sub-command name -> module that defines ``register(subparsers)``
SUBCOMMANDS: dict[str, str] = {
    "upscale": "liif_sr.inference.upscale_cli",
    "make-lr": "liif_sr.data.make_lr",
    "download": "liif_sr.data.download.fetch",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Build the parser; with ``only`` import just that sub-command's module."""
    parser = argparse.ArgumentParser(
        prog="liif-sr", description="Arbitrary-scale super-resolution with LIIF."
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in SUBCOMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=f"(see liif-sr {name} --help)")
            continue
        importlib.import_module(module).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if a in SUBCOMMANDS), None)
    parser = build_parser(only=command) if command else build_parser(only="")
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with kernel_warnings(f"liif-sr {args.command}"):
            return int(args.func(args) or 0)
    except UserError as exc:
        if args.debug:
            raise
        return report_user_error(f"liif-sr {args.command}", exc)
    except KeyboardInterrupt:
        print(f"liif-sr {args.command}: interrupted", file=sys.stderr)
        return 130


class _CommandLine(logging.Handler):
    """A warning record as the command's own line on stderr, above a progress bar (``tqdm.write``)."""

    def __init__(self, prog: str) -> None:
        super().__init__(logging.WARNING)
        self.prog = prog

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        message = record.getMessage().removeprefix("liif_sr ")
        tqdm.write(f"{self.prog}: warning: {message}", file=sys.stderr)


@contextlib.contextmanager
def kernel_warnings(prog: str) -> Iterator[None]:
    """Within the block the C kernels' warnings (logger ``liif_sr.kernels``: a kernel the decode would use is
    unavailable, once per kernel and process) are printed as ``<prog>: warning: ...`` lines, and only there
    (the logger's INFO lines, e.g. ``LIIF_SR_KERNELS=0``, stay unprinted)."""
    logger = logging.getLogger("liif_sr.kernels")
    handler, propagate = _CommandLine(prog), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


if __name__ == "__main__":
    sys.exit(main())
