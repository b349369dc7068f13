"""SR metrics with the conventions of published tables: MATLAB Y, border shave, per-image averaging."""

from liif_sr.metrics.sr import MeanPSNR, protocol_shave, psnr, psnr_protocol, rgb_to_y_matlab, ssim_matlab

__all__ = ["MeanPSNR", "protocol_shave", "psnr", "psnr_protocol", "rgb_to_y_matlab", "ssim_matlab"]
