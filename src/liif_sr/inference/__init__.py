"""Inference: upscaling images of any size with a LIIF model."""
