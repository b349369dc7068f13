"""Comparison picture (LR crop | bicubic | LIIF | HR) of one HR image at one scale.

Usage: python scripts/make_comparison.py HR_IMAGE SCALE OUT.png [--checkpoint edsr-baseline-liif] [--crop 96]
The LR is made with MATLAB bicubic (as the benchmark LR_bicubic files); crops are centred unless --center y,x.
"""

from __future__ import annotations

import argparse

import torch

from liif_sr import load_model
from liif_sr.data.images import read_image, write_image_atomic
from liif_sr.data.make_lr import mod_crop
from liif_sr.data.resize import imresize_matlab_uint8, upsample_bicubic
from liif_sr.metrics.sr import psnr_protocol
from liif_sr.training.callbacks.pictures import comparison_crops, side_by_side


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("hr")
    p.add_argument("scale", type=int)
    p.add_argument("out")
    p.add_argument("--checkpoint", default="edsr-baseline-liif")
    p.add_argument("--crop", type=int, default=96)
    p.add_argument("--center", default=None, help="crop centre y,x in HR pixels")
    args = p.parse_args()
    s = args.scale
    hr8 = torch.from_numpy(read_image(args.hr)).permute(2, 0, 1)
    hr8 = mod_crop(hr8, s)
    h, w = hr8.shape[1:]
    lr = imresize_matlab_uint8(hr8, size=(h // s, w // s)).float()[None] / 255
    hr = hr8.float()[None] / 255
    model = load_model(args.checkpoint)
    with torch.no_grad():
        sr = model.upscale(lr, (h, w))
    bic = upsample_bicubic(lr, (h, w)).clamp(0, 1)
    if args.center:
        cy, cx = (int(v) for v in args.center.split(","))
        y0, x0 = max(0, cy - args.crop // 2), max(0, cx - args.crop // 2)
        y0, x0 = y0 // s * s, x0 // s * s
        sl = (slice(None), slice(y0, y0 + args.crop), slice(x0, x0 + args.crop))
        lr_sl = (slice(None), slice(y0 // s, (y0 + args.crop) // s), slice(x0 // s, (x0 + args.crop) // s))
        tiles = [lr[0][lr_sl], bic[0][sl], sr[0][sl], hr[0][sl]]
        tiles[0] = torch.nn.functional.interpolate(tiles[0][None], size=tiles[1].shape[-2:], mode="nearest")[
            0
        ]
    else:
        tiles = comparison_crops(lr[0], bic[0], sr[0], hr[0], s, crop=args.crop)
    write_image_atomic(args.out, side_by_side(tiles, size=192), overwrite=True)
    p_sr = float(psnr_protocol(sr, hr, "benchmark", s)[0])
    p_bic = float(psnr_protocol(bic, hr, "benchmark", s)[0])
    print(f"{args.out}: x{s} Y-PSNR LIIF {p_sr:.2f} dB, bicubic {p_bic:.2f} dB")


if __name__ == "__main__":
    main()
