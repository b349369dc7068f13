"""The official LMF repository's head formats (HeZongyao/LMF, ``configs/train-lmf/train_*-lm*.yaml``).

An LMF model spec has ``imnet_spec`` = ``lmmlp`` (the render MLP: ``hidden_dim``, ``hidden_depth``,
``mod_scale``, ``mod_shift``) and ``hypernet_spec`` = ``mlp`` (the latent MLP: ``hidden_list``; its
``out_dim`` is overridden by the official constructor, so the recipes' 208/288 is ignored, as there). Only what
the recipes configure is mapped (local ensemble, cell decoding, ``mod_input``, both modulations, LM-LIIF's
unfold); other values, a ``cmsr_spec`` or unknown arguments are refused in one line (ValueError → the
converter's :class:`~liif_sr.errors.CheckpointError`). :func:`lmf_render_args` and :func:`lmf_hypernet_hidden_list`
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


def lmf_hypernet_hidden_list(name: str, args: Mapping[str, Any]) -> list[int]:
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
    return {**lmf_render_args("lmliif", args), "hidden_list": lmf_hypernet_hidden_list("lmliif", args)}


def lmlte_config(args: Mapping[str, Any]) -> dict[str, Any]:
    """Official ``lmlte`` args → :class:`~liif_sr.models.heads.lmlte.LMLTEHead` config."""
    check_lmf_args("lmlte", args, ("hidden_dim",))
    render = lmf_render_args("lmlte", args)
    return {
        "latent_dim": int(args.get("hidden_dim", 128)),
        **render,
        "hidden_list": lmf_hypernet_hidden_list("lmlte", args),
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


#: LMF's lmciaosr switches our head implements (the repository's configuration; constructor defaults apply)
LMCIAOSR_FIXED = {
    "local_size": 2,
    "feat_unfold": True,
    "non_local_attn": True,
    "multi_scale": [2],
    "softmax_scale": 1,
    "mod_input": True,
}
_LMCIAOSR_DEFAULTS = {**LMCIAOSR_FIXED, "mod_input": False}
_LMCIAOSR_NETS = ("prenet_q", "hypernet_q", "imnet_q", "imnet_k", "imnet_v")


def lmciaosr_config(args: Mapping[str, Any]) -> dict[str, Any]:
    """Official ``lmciaosr`` args (its encoder under ``encoder``) → :class:`~liif_sr.models.heads.lmciaosr.
    LMCiaoSRHead` config, with ``lr_skip="eval"``: the official skip in evaluation only."""
    name = "lmciaosr"
    unknown = sorted(set(args) - {"encoder", *_LMCIAOSR_NETS, *LMCIAOSR_FIXED, "cmsr_spec"})
    if unknown:
        raise ValueError(f"official {name} model has arguments the official code does not take: {unknown}")
    if args.get("cmsr_spec") is not None:
        raise ValueError(
            f"official {name} model has a cmsr_spec: CMSR (an approximation with per-model tables) is not "
            "supported; the plain decode is"
        )
    for key, want in LMCIAOSR_FIXED.items():
        got = args.get(key, _LMCIAOSR_DEFAULTS[key])
        if (list(got) if isinstance(got, (list, tuple)) else got) != want:
            raise ValueError(
                f"official {name} model sets {key}={got!r}; only the recipes' {want!r} is supported"
            )
    render = _spec_args(name, args, "imnet_q", "lmmlp")
    if not (render.get("mod_scale", True) and render.get("mod_shift", True)) or render.get("use_conv"):
        raise ValueError(f"official {name} model: only an lmmlp imnet_q with both modulations, no use_conv")
    if int(render.get("out_dim", 3)) != 3:
        raise ValueError(f"official {name} model renders {render.get('out_dim')} channels, not 3")
    if "hidden_dim" not in render or "hidden_depth" not in render:
        raise ValueError(f"official {name} model: imnet_q has no hidden_dim/hidden_depth")
    nets = [k for k in _LMCIAOSR_NETS if k != "imnet_q"]
    hidden = {k: _spec_args(name, args, k, "mlp").get("hidden_list", []) for k in nets}
    attn = {k: [int(h) for h in v] for k, v in hidden.items() if k != "hypernet_q"}
    if len({tuple(v) for v in attn.values()}) != 1:
        raise ValueError(f"official {name} model: prenet_q, imnet_k, imnet_v hidden lists differ ({attn})")
    return {
        "hidden_dim": int(render["hidden_dim"]),
        "hidden_depth": int(render["hidden_depth"]),
        "attn_hidden": attn["prenet_q"],
        "hidden_list": [int(h) for h in hidden["hypernet_q"]],
        "out_dim": 3,
        "lr_skip": "eval",
    }


LMCIAOSR_PREFIXES = {
    "cs_attn.": "attention.",
    "prenet_q.": "prenet_q.",
    "imnet_k.": "imnet_k.",
    "imnet_v.": "imnet_v.",
    "hypernet_q.": "hypernet.",
    "imnet_q.": "render.",
}
