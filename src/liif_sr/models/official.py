"""Official LIIF / LTE checkpoint specs → our plain config and state dict (docs/method.md: Official checkpoints).

The official ``train_liif.py`` (LIIF) and ``train.py`` (LTE, LMF) save ``{"model": {"name", "args", "sd"}, ...}``.
One generic converter handles every registered head with an official format (``liif``, ``lte``,
``metasr``; the LMF repository's ``lmliif``, ``lmlte``, ``lmciaosr``:
:data:`~liif_sr.models.official_heads.OFFICIAL_HEADS`, each naming the ``args`` key of its encoder spec:
``encoder_spec``, or ``encoder`` for ``lmciaosr``) on every
registered encoder with one (``edsr-baseline``, ``rdn``, ``swinir``: :attr:`Encoder.official_name`,
:meth:`Encoder.official_config` / :meth:`~Encoder.official_state_dict`). Anything else is refused in one
line naming what the file has and what is supported.

Conversion is strict: every state-dict key is either the encoder's (``encoder.*``) or matches one of the
head's official prefixes; other keys are refused, all named. The model is then loaded
with ``strict=True`` by :func:`liif_sr.checkpoints.load_model`, which names missing or unexpected keys.

The official ``configs/train-div2k/train_swinir-liif.yaml`` names its model ``swinir`` (a slip; the official
factory raises on it, ``docs/method.md`` "Official checkpoints"). A top-level ``swinir`` is read as ``liif`` with the SwinIR encoder when its
args look like a LIIF spec (a SwinIR ``encoder_spec`` and an ``mlp`` ``imnet_spec``, no other head's args),
and refused otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from liif_sr.errors import CheckpointError
from liif_sr.models.encoders.base import Encoder
from liif_sr.models.heads.base import DecoderHead
from liif_sr.models.official_heads import OFFICIAL_HEADS
from liif_sr.models.registry import encoders, heads

_KEYS = tuple(dict.fromkeys(["encoder_spec", *(f.encoder_key for f in OFFICIAL_HEADS.values())]))
_LIIF_ARGS = {"encoder_spec", "imnet_spec", "feat_unfold", "local_ensemble", "cell_decode"}


def official_encoders() -> dict[str, type[Encoder]]:
    """Official ``encoder_spec.name`` → our encoder class (those that implement the official format)."""
    return {cls.official_name: cls for cls in encoders().values() if cls.official_name}


def official_heads() -> dict[str, type[DecoderHead]]:
    """Official model name → our head class (those with an official format, in :data:`OFFICIAL_HEADS` order)."""
    registered = heads()
    return {n: registered[n] for n in OFFICIAL_HEADS if n in registered}


def supported() -> str:
    """``"liif, lte, metasr, lmliif, lmlte, lmciaosr with edsr-baseline, rdn, swinir"``."""
    return f"{', '.join(official_heads())} with {', '.join(official_encoders())}"


def _refuse(what: str) -> CheckpointError:
    return CheckpointError(f"{what} is not supported; supported: {supported()}")


def _resolve_name(name: Any, args: Mapping[str, Any]) -> Any:
    """The slip of ``train_swinir-liif.yaml``: a top-level ``swinir`` with a LIIF spec is ``liif``."""
    if name != "swinir":
        return name
    enc = args.get("encoder_spec")
    imnet = args.get("imnet_spec")
    if (
        isinstance(enc, Mapping)
        and enc.get("name") == "swinir"
        and isinstance(imnet, Mapping)
        and imnet.get("name") == "mlp"
        and set(args) <= _LIIF_ARGS
    ):
        return "liif"
    raise CheckpointError(
        "official model 'swinir' at the top level is not a LIIF spec (expected a swinir encoder_spec and an "
        f"mlp imnet_spec, as the slip in train_swinir-liif.yaml; got args {sorted(args)}); "
        f"supported: {supported()}"
    )


def official_to_ours(spec: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """An official ``{"name", "args", "sd"}`` model spec → ``(config, state_dict)`` for
    :func:`~liif_sr.models.build.build_model` (raises :class:`CheckpointError`, one line)."""
    args = spec.get("args") or {}
    if not isinstance(args, Mapping):
        raise CheckpointError(f"official model spec has args of type {type(args).__name__}, not a dict")
    name = _resolve_name(spec.get("name"), args)
    head_cls = official_heads().get(name)
    # the head's format names its encoder key (LIIF/LTE: encoder_spec; LMF's lmciaosr: encoder); an unknown
    # model with any such key is an implicit model we do not support, one with none a fixed-scale network
    keys = [OFFICIAL_HEADS[head_cls.name].encoder_key] if head_cls else list(_KEYS)
    key = next((k for k in keys if k in args), keys[0])
    enc_spec = args.get(key)
    if not isinstance(enc_spec, Mapping):
        raise _refuse(f"official model {name!r} (no {key}: a fixed-scale network, not an implicit decoder)")
    enc_name = enc_spec.get("name")
    enc_cls = official_encoders().get(enc_name)
    if head_cls is None or enc_cls is None:
        raise _refuse(f"official model {name!r} with encoder {enc_name!r}")
    try:
        enc_cfg = enc_cls.official_config(dict(enc_spec.get("args") or {}))
        head_cfg = OFFICIAL_HEADS[head_cls.name].config(dict(args))
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None
    return (
        {"encoder": {"name": enc_cls.name, "args": enc_cfg}, "head": {"name": head_cls.name, **head_cfg}},
        _official_state_dict(spec.get("sd"), head_cls, enc_cls),
    )


def _official_state_dict(sd: Any, head_cls: type[DecoderHead], enc_cls: type[Encoder]) -> dict[str, Tensor]:
    if not isinstance(sd, Mapping):
        raise CheckpointError(f"official model spec has an sd of type {type(sd).__name__}, not a state dict")
    enc_sd, head_sd, unknown = {}, {}, []
    for key, value in sd.items():
        key = str(key).removeprefix("module.")  # saved from DataParallel
        if key.startswith("encoder."):
            enc_sd[key[len("encoder.") :]] = value
        elif key.startswith(tuple(OFFICIAL_HEADS[head_cls.name].prefixes)):
            head_sd[key] = value
        else:
            unknown.append(key)
    if unknown:
        more = f" and {len(unknown) - 8} more" if len(unknown) > 8 else ""
        raise CheckpointError(
            f"official {head_cls.name} checkpoint has keys the official {head_cls.name} model does not: "
            f"{', '.join(unknown[:8])}{more}"
        )
    try:
        enc_sd = enc_cls.official_state_dict(enc_sd)
        head_sd = OFFICIAL_HEADS[head_cls.name].state_dict(head_cls.__name__, head_sd)
    except ValueError as exc:
        raise CheckpointError(f"official checkpoint: {exc}") from None
    return {**{"encoder." + k: v for k, v in enc_sd.items()}, **{"head." + k: v for k, v in head_sd.items()}}
