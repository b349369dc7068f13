"""The official LMF repository's head formats (HeZongyao/LMF, ``configs/train-lmf/train_*-lm*.yaml``).

An LMF model spec has ``imnet_spec`` = ``lmmlp`` (the render MLP: ``hidden_dim``, ``hidden_depth``,
``mod_scale``, ``mod_shift``) and ``hypernet_spec`` = ``mlp`` (the latent MLP: ``hidden_list``; its
``out_dim`` is overridden by the official constructor, so the recipes' 208/288 is ignored, as there). Only what
the recipes configure is mapped (local ensemble, cell decoding, ``mod_input``, both modulations, LM-LIIF's
unfold); other values, a ``cmsr_spec`` or unknown arguments are refused in one line (ValueError → the
converter's :class:`~liif_sr.errors.CheckpointError`). :func:`lmf_render_args` and :func:`lmf_hypernet_hidden`
are shared by every LM head's entry in :data:`~liif_sr.models.official_heads.OFFICIAL_HEADS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: the flags every LMF recipe sets to True; our heads implement exactly that configuration
LMF_FLAGS = ("local_ensemble", "cell_decode", "mod_input")


def _spec_args(name: str, args: Mapping[str, Any], key: str, module: str) -> dict[str, Any]:
    spec = args.get(key)
    if not isinstance(spec, Mapping) or spec.get("name") != module:
        got = spec.get("name") if isinstance(spec, Mapping) else spec
        raise ValueError(f"official {name} model has {key} {got!r}, expected {module!r}")
    return dict(spec.get("args") or {})


def check_lmf_args(name: str, args: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    """Refuse unknown arguments, a CMSR spec, and recipe flags that are not True (one line each)."""
    known = {"encoder_spec", "imnet_spec", "hypernet_spec", *LMF_FLAGS, *allowed}
    unknown = sorted(set(args) - known - {"cmsr_spec"})
    if unknown:
        raise ValueError(f"official {name} model has arguments the official code does not take: {unknown}")
    if args.get("cmsr_spec") is not None:
        raise ValueError(
            f"official {name} model has a cmsr_spec: CMSR (an approximation with per-model tables) is not "
            "supported; the plain decode is"
        )
    off = [f for f in LMF_FLAGS if not args.get(f, f == "local_ensemble" or f == "cell_decode")]
    if off:
        raise ValueError(
            f"official {name} model sets {off} to false; only the LMF recipes' true values are supported"
        )


def lmf_render_args(name: str, args: Mapping[str, Any]) -> dict[str, int]:
    """``hidden_dim``, ``hidden_depth``, ``out_dim`` of the ``lmmlp`` render MLP (both modulations required)."""
    imnet = _spec_args(name, args, "imnet_spec", "lmmlp")
    if not (imnet.get("mod_scale", True) and imnet.get("mod_shift", True)):
        raise ValueError(
            f"official {name} model modulates only scales or only shifts; both are supported only"
        )
    if imnet.get("use_conv"):
        raise ValueError(f"official {name} model has a convolutional lmmlp (use_conv); not supported")
    return {
        "hidden_dim": int(imnet.get("hidden_dim", 16)),
        "hidden_depth": int(imnet.get("hidden_depth", 6)),
        "out_dim": int(imnet.get("out_dim", 3)),
    }


def lmf_hypernet_hidden(name: str, args: Mapping[str, Any]) -> list[int]:
    """The latent MLP's hidden sizes (``hypernet_spec.args.hidden_list``; its ``out_dim`` is ignored)."""
    hyper = _spec_args(name, args, "hypernet_spec", "mlp")
    if hyper.get("use_conv"):
        raise ValueError(f"official {name} model has a convolutional hypernet (use_conv); not supported")
    return [int(h) for h in hyper.get("hidden_list", [])]


def lmliif_config(args: Mapping[str, Any]) -> dict[str, Any]:
    """Official ``lmliif`` args → :class:`~liif_sr.models.heads.lmliif.LMLIIFHead` config."""
    check_lmf_args("lmliif", args, ("feat_unfold",))
    if not args.get("feat_unfold", True):
        raise ValueError(
            "official lmliif model sets feat_unfold to false; only the recipes' true is supported"
        )
    return {**lmf_render_args("lmliif", args), "hypernet_hidden": lmf_hypernet_hidden("lmliif", args)}


def lmlte_config(args: Mapping[str, Any]) -> dict[str, Any]:
    """Official ``lmlte`` args → :class:`~liif_sr.models.heads.lmlte.LMLTEHead` config."""
    check_lmf_args("lmlte", args, ("hidden_dim",))
    render = lmf_render_args("lmlte", args)
    return {
        "latent_dim": int(args.get("hidden_dim", 128)),
        **render,
        "hypernet_hidden": lmf_hypernet_hidden("lmlte", args),
    }


#: official state-dict prefix → ours, per LM head
LMLIIF_PREFIXES = {"hypernet.": "hypernet.", "imnet.": "render."}
LMLTE_PREFIXES = {
    "coef.": "coef.",
    "freq.": "freq.",
    "phase.": "phase.",
    "imphase.": "imphase.",
    "hypernet.": "hypernet.",
    "imnet.": "render.",
}
