"""liif-sr: arbitrary-scale image super-resolution with LIIF (Chen, Liu & Wang, CVPR 2021).

Public API::

    from liif_sr import load_model
    model = load_model("path/to/checkpoint")          # liif-sr or official LIIF checkpoint
    rgb = model.query(lr, coord, cell)                # (B, Q, 3), [0, 1] space, unclamped
    sr = model.upscale(lr, size=(H, W))               # (B, 3, H, W) in [0, 1]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["ImplicitSR", "__version__", "load_model"]

if TYPE_CHECKING:
    from liif_sr.checkpoints import load_model
    from liif_sr.models.implicit_sr import ImplicitSR


def __getattr__(name: str) -> Any:  # lazy: keep `import liif_sr` (and CLI start-up) light
    if name == "load_model":
        from liif_sr.checkpoints import load_model

        return load_model
    if name == "ImplicitSR":
        from liif_sr.models.implicit_sr import ImplicitSR

        return ImplicitSR
    from liif_sr.deprecated import renamed  # old names (LIIF): one release with a DeprecationWarning

    return renamed(__name__, name)
