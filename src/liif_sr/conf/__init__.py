"""Hydra configs of liif-sr (shipped with the package so a wheel install finds them)."""
