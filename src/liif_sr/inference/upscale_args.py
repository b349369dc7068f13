"""``liif-sr upscale``'s command line: the argparse sub-command and its option types (run: ``upscale_cli``)."""

from __future__ import annotations

import argparse

DEFAULT_MODEL = "edsr-baseline-liif"


def _cell_clip_arg(text: str) -> float | str | None:
    """``--cell-clip``: ``auto``, ``off``/``none`` or a number."""
    low = text.strip().lower()
    if low == "auto":
        return "auto"
    if low in ("off", "none"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto, off or a number, got {text!r}") from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "upscale",
        help="upscale images to any size or scale",
        description="Upscale images (files or folders) with a LIIF model. Output sizes are HxW (height first).",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders of images")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--scale", type=str, help="scale factor, e.g. 4 or 2.5, or per axis SYxSX (e.g. 2x3)")
    g.add_argument("--size", type=str, help="output size HxW, e.g. 800x800")
    p.add_argument(
        "--output",
        "--out",
        "-o",
        required=True,
        help="output file (one input; its suffix sets the format) or folder (a new one must have no suffix)",
    )
    p.add_argument(
        "--checkpoint",
        "-c",
        default=DEFAULT_MODEL,
        help="checkpoint file (liif-sr or official LIIF), training run folder, or shipped model name "
        f"(default {DEFAULT_MODEL})",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16-decode", "bf16", "fp16"],
        help="auto (default): the head's decode in bf16 where the device has native bf16 (CPU AVX512-BF16/AMX, "
        "CUDA sm80+; at most 0.01 dB from fp32, measured), else fp32; fp32: full precision; bf16-decode: "
        "that rule forced; bf16/fp16: the whole network (fp16: CUDA only). The summary line says what ran",
    )
    p.add_argument("--chunk", type=int, default=65536, help="queries decoded at once (bounds memory)")
    p.add_argument("--batch", type=int, default=4, help="images of equal size processed together")
    p.add_argument(
        "--cell-clip",
        type=_cell_clip_arg,
        default="auto",
        metavar="S",
        help="use the cell of xS for larger scales: auto (default) = the head's paper protocol (LTE: 4; "
        "LIIF, MetaSR: off), off, or a number",
    )
    p.add_argument(
        "--border",
        choices=["replicate", "none"],
        default="replicate",
        help="replicate (default): pad the LR with 8 replicated pixels so borders and tiny images keep "
        "their colours; none: the papers' zero padding (what liif-sr-eval scores)",
    )
    p.add_argument(
        "--tile",
        type=int,
        default=0,
        metavar="N",
        help="encode the input in NxN LR tiles (bounds memory for large inputs; the same output up to float "
        "rounding: rarely one 8-bit level apart; 0 = off)",
    )
    p.add_argument(
        "--max-memory",
        default=None,
        metavar="SIZE",
        help="memory budget, e.g. 8G: with --tile 0, pick the tile size from it (off by default)",
    )
    p.add_argument(
        "--max-output-pixels",
        type=float,
        default=100e6,
        help="refuse outputs larger than this many pixels (default 100e6)",
    )
    p.add_argument(
        "--format",
        default=None,
        choices=["png", "jpg", "webp", "bmp", "tif"],
        help="output format for folder outputs (default png)",
    )
    p.add_argument(
        "--recursive",
        "-r",
        action="store_true",
        help="include the images in subfolders of input folders, keeping the folder tree in the output",
    )
    ex = p.add_mutually_exclusive_group()
    ex.add_argument("--overwrite", action="store_true", help="replace existing output files")
    ex.add_argument(
        "--skip-existing",
        action="store_true",
        help="skip inputs whose output file exists (to continue an interrupted run)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from liif_sr.inference.upscale_cli import run

    return run(args)
