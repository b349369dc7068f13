"""The official LIIF / LTE / MetaSR / LM-CiaoSR head formats: config and state-dict conversion (used by :mod:`.official`).

Kept out of the head contract (:class:`~liif_sr.models.heads.base.DecoderHead`): a head is the algorithm; how
the papers' code stored it is one :class:`OfficialHead` entry here, keyed by our head name. A new head needs
no entry (it simply has no official format).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from liif_sr.models.heads.base import DecoderHead
from liif_sr.models.official_lmf import (
    LMCIAOSR_PREFIXES,
    LMLIIF_PREFIXES,
    LMLTE_PREFIXES,
    lmciaosr_config,
    lmliif_config,
    lmlte_config,
)


def official_mlp(name: str, args: Mapping[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    """Check an official spec's ``args`` (only ``encoder_spec`` and ``allowed`` keys, an ``mlp``
    ``imnet_spec``) and return the MLP's args; ValueError otherwise (one line)."""
    unknown = sorted(set(args) - {"encoder_spec", "imnet_spec", *allowed})
    if unknown:
        raise ValueError(f"official {name} model has arguments the official code does not take: {unknown}")
    imnet = args.get("imnet_spec")
    if not isinstance(imnet, Mapping) or imnet.get("name") != "mlp":
        got = imnet.get("name") if isinstance(imnet, Mapping) else imnet
        raise ValueError(
            f"official {name} model has no MLP decoder (imnet_spec: {got!r}); "
            "fixed-scale baselines are not supported"
        )
    return dict(imnet.get("args") or {})


def _liif_config(args: Mapping[str, Any]) -> dict[str, Any]:
    imnet = official_mlp("liif", args, ("feat_unfold", "local_ensemble", "cell_decode"))
    return {
        "hidden_list": list(imnet.get("hidden_list", [256, 256, 256, 256])),
        "out_dim": int(imnet.get("out_dim", 3)),
        "feat_unfold": bool(args.get("feat_unfold", True)),
        "local_ensemble": bool(args.get("local_ensemble", True)),
        "cell_decode": bool(args.get("cell_decode", True)),
    }


def _lte_config(args: Mapping[str, Any]) -> dict[str, Any]:
    imnet = official_mlp("lte", args, ("hidden_dim",))
    return {
        "hidden_dim": int(args.get("hidden_dim", 256)),
        "hidden_list": list(imnet.get("hidden_list", [256, 256, 256])),
        "out_dim": int(imnet.get("out_dim", 3)),
    }


def _metasr_config(args: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(args) - {"encoder_spec"})
    if unknown:
        raise ValueError(f"official metasr model has arguments the official code does not take: {unknown}")
    return {"hidden_list": [256], "out_dim": 3}  # fixed in the official MetaSR


@dataclass(frozen=True)
class OfficialHead:
    """How the official code stores one head.

    Attributes:
        config: official model ``args`` → our head config (without ``in_channels``); ValueError if refused.
        prefixes: official state-dict key prefix → ours (relative to the head), e.g. ``{"imnet.": "mlp."}``.
        encoder_key: the model ``args`` key holding the encoder spec (``"encoder_spec"``; LMF's lmciaosr:
            ``"encoder"``).
    """

    config: Callable[[Mapping[str, Any]], dict[str, Any]]
    prefixes: Mapping[str, str]
    encoder_key: str = "encoder_spec"

    def state_dict(self, name: str, sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The head's own state dict (keys relative to the head) from an official model state dict.

        ``encoder.*`` keys are skipped (a ``module.`` prefix is dropped); any other key must start with one
        of :attr:`prefixes`, else a ValueError names it.
        """
        out: dict[str, Tensor] = {}
        for key, value in sd.items():
            key = key.removeprefix("module.")
            if key.startswith("encoder."):
                continue
            prefix = next((p for p in self.prefixes if key.startswith(p)), None)
            if prefix is None:
                raise ValueError(f"{name}: unexpected official state-dict key {key!r}")
            out[self.prefixes[prefix] + key[len(prefix) :]] = value
        return out


#: our head name → its official format
OFFICIAL_HEADS: dict[str, OfficialHead] = {
    "liif": OfficialHead(_liif_config, {"imnet.": "mlp."}),
    "lte": OfficialHead(
        _lte_config, {"coef.": "coef.", "freq.": "freq.", "phase.": "phase.", "imnet.": "mlp."}
    ),
    "metasr": OfficialHead(_metasr_config, {"imnet.": "mlp."}),
    # the LMF repository's heads (models/official_lmf.py)
    "lmliif": OfficialHead(lmliif_config, LMLIIF_PREFIXES),
    "lmlte": OfficialHead(lmlte_config, LMLTE_PREFIXES),
    "lmciaosr": OfficialHead(lmciaosr_config, LMCIAOSR_PREFIXES, encoder_key="encoder"),
}


def head_from_official(
    cls: type[DecoderHead], spec: Mapping[str, Any], in_channels: int, **kwargs: Any
) -> DecoderHead:
    """Build head ``cls`` from an official ``{'name', 'args', 'sd'}`` model spec and load its weights."""
    if spec.get("name") != cls.name:
        raise ValueError(f"{cls.__name__}: official model is {spec.get('name')!r}, not {cls.name!r}")
    fmt = OFFICIAL_HEADS[cls.name]
    head = cls(in_channels=in_channels, **fmt.config(dict(spec.get("args", {}))), **kwargs)
    head.load_state_dict(fmt.state_dict(cls.__name__, spec["sd"]), strict=True)
    return head
