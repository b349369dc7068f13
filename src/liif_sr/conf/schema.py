"""Structured-config schemas of the training config groups, registered in Hydra's ``ConfigStore``.

Each schema is a dataclass whose fields carry types; the group's YAML lists it first in its defaults
(``data/_base.yaml``: ``- _schema``), so OmegaConf checks every value and override against the types while
Hydra composes: ``data.batch_size=abc``, ``data.inp_size=1.5``, ``model.optimizer.lr=fast`` or
``model.encoder.n_resblocks=many`` fail at composition, in one line, before anything is written. Value rules
that a type cannot express (positive, ordered, the ``sample_q`` bound) are in
:mod:`liif_sr.training.constraints`.

The encoder and head schemas list the options of the shipped classes (``model/encoder/<name>.yaml`` and
``model/head/<name>.yaml`` start from them); a config of one's own class (another ``_target_``) simply does not
list a schema. ``+key=value`` still adds a key the schema does not have (Hydra's ``+``); the class then
refuses it when the start-up checks build the network (:mod:`liif_sr.training.dry_build`).

Registered by :mod:`liif_sr.conf` on import (Hydra imports it to read the configs). No torch imports here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional  # noqa: UP035 - OmegaConf reads these annotations at run time

from hydra.core.config_store import ConfigStore

from liif_sr.data.options import DataConfig

# ruff: noqa: UP006, UP045 - OmegaConf needs typing.List / Optional in dataclass annotations


@dataclass
class EDSRBaselineConfig:
    _target_: str = "liif_sr.models.encoders.edsr_baseline.EDSRBaseline"
    n_resblocks: int = 16
    n_feats: int = 64
    res_scale: float = 1.0
    n_colors: int = 3


@dataclass
class RDNConfig:
    _target_: str = "liif_sr.models.encoders.rdn.RDN"
    G0: int = 64
    config: str = "B"
    kernel_size: int = 3
    D: Optional[int] = None
    C: Optional[int] = None
    G: Optional[int] = None
    n_colors: int = 3


@dataclass
class SwinIRConfig:
    _target_: str = "liif_sr.models.encoders.swinir.SwinIR"
    embed_dim: int = 180
    depths: List[int] = field(default_factory=lambda: [6] * 6)
    num_heads: List[int] = field(default_factory=lambda: [6] * 6)
    window_size: int = 8
    mlp_ratio: float = 2.0
    drop_path_rate: float = 0.1
    out_dim: int = 64
    n_colors: int = 3


@dataclass
class HeadConfig:
    """What every shipped head node is: a factory of the head class (``_partial_``: the module passes the
    encoder's ``in_channels``). Each head's schema sets ``_target_`` and lists its class's options."""

    _target_: str = ""
    _partial_: bool = True


@dataclass
class LIIFHeadConfig(HeadConfig):
    _target_: str = "liif_sr.models.heads.liif.LIIFHead"
    hidden_list: List[int] = field(default_factory=lambda: [256] * 4)
    out_dim: int = 3
    feat_unfold: bool = True
    local_ensemble: bool = True
    cell_decode: bool = True
    fast: bool = True


@dataclass
class LTEHeadConfig(HeadConfig):
    _target_: str = "liif_sr.models.heads.lte.LTEHead"
    hidden_dim: int = 256
    hidden_list: List[int] = field(default_factory=lambda: [256] * 3)
    out_dim: int = 3
    fast: bool = True


@dataclass
class MetaSRHeadConfig(HeadConfig):
    _target_: str = "liif_sr.models.heads.metasr.MetaSRHead"
    hidden_list: List[int] = field(default_factory=lambda: [256])
    out_dim: int = 3
    fast: bool = True


@dataclass
class LMHeadConfig(HeadConfig):
    """The options the latent-modulated heads share (``models/heads/lmf_common.py``): the render MLP's width
    ``hidden_dim`` and depth ``hidden_depth``, the latent MLP's ``hidden_list``, ``out_dim`` and ``fast``.
    The defaults are LM-LTE's and LM-CiaoSR's; each head sets its own ``_target_`` and differing defaults."""

    hidden_dim: int = 16
    hidden_depth: int = 8
    hidden_list: List[int] = field(default_factory=lambda: [288])
    out_dim: int = 3
    fast: bool = True


@dataclass
class LMLIIFHeadConfig(LMHeadConfig):
    _target_: str = "liif_sr.models.heads.lmliif.LMLIIFHead"
    hidden_depth: int = 6
    hidden_list: List[int] = field(default_factory=lambda: [208])


@dataclass
class LMLTEHeadConfig(LMHeadConfig):
    _target_: str = "liif_sr.models.heads.lmlte.LMLTEHead"
    latent_dim: int = 128


@dataclass
class LMCiaoSRHeadConfig(LMHeadConfig):
    _target_: str = "liif_sr.models.heads.lmciaosr.LMCiaoSRHead"
    attn_hidden: List[int] = field(default_factory=lambda: [256])
    lr_skip: str = "always"


@dataclass
class OptimizerConfig:
    """An optimizer factory (``_partial_``); other torch optimizers' own options are added with ``+``."""

    _target_: str = "torch.optim.Adam"
    _partial_: bool = True
    lr: float = 1e-4


@dataclass
class SchedulerConfig:
    _target_: str = "torch.optim.lr_scheduler.MultiStepLR"
    _partial_: bool = True
    milestones: List[int] = field(default_factory=lambda: [200, 400, 600, 800])
    gamma: float = 0.5


@dataclass
class SpeedConfig:
    channels_last: bool = True
    fused_adam: bool = True
    reuse_host_memory: bool = True
    compile: bool = False
    compile_mode: Optional[str] = None


@dataclass
class ModelConfig:
    """The LightningModule node (``model/liif.yaml``); ``encoder`` and ``head`` have their own schemas."""

    _target_: str = "liif_sr.training.module.SRTrainingModule"
    encoder: Any = None
    head: Any = None
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    # Any: a run may swap the schedule (`model.scheduler=null "model.scheduler={_target_: ...OneCycleLR, ...}"`,
    # scripts/gpu_run.sh); the default MultiStepLR node stays typed (SchedulerConfig)
    scheduler: Any = field(default_factory=SchedulerConfig)
    scheduler_interval: str = "epoch"
    val_scales: List[float] = field(default_factory=lambda: [2.0, 3.0, 4.0])
    val_protocol: str = "div2k"
    val_chunk: int = 65536
    speed: SpeedConfig = field(default_factory=SpeedConfig)


@dataclass
class TrainConfig:
    """The trainer-independent options of ``train.yaml`` (the groups have their own schemas)."""

    task_name: str = "train"
    tags: List[str] = field(default_factory=list)
    seed: Optional[int] = 1234
    ckpt_path: Optional[str] = None
    resume: Optional[str] = None
    init_weights: Optional[str] = None
    optimized_metric: Optional[str] = "val/psnr"
    export_weights: bool = True
    dry_run: bool = False
    data: Any = None
    model: Any = None
    callbacks: Any = None
    logger: Any = None
    trainer: Any = None
    paths: Any = None


@dataclass
class EvalConfig:
    """The options of ``eval.yaml`` (``liif-sr-eval``). ``checkpoint``, ``scales`` and ``cell_clip`` take
    several kinds of value (a path, a list or a map; ``auto``, null or a number): their values are checked by
    :func:`liif_sr.evaluation.preflight.check_options`. The flags stay untyped: OmegaConf would read
    ``ssim=2`` as true, which ``check_options`` refuses."""

    task_name: str = "eval"
    checkpoint: Any = None
    bicubic: Any = True
    scales: Any = None
    downsampler: str = "pil"
    generate_with: Optional[str] = None
    skip_missing: Any = False
    first_k: Optional[int] = None
    device: str = "auto"
    chunk: int = 65536
    cell_clip: Any = "auto"
    border: str = "none"
    head_mode: str = "fast"
    ssim: Any = True
    plot: Any = True
    progress: Any = True
    benchmark: Any = None
    logger: Any = None
    paths: Any = None


#: (group, name, node): the YAML of the group lists ``name`` first in its defaults
SCHEMAS: tuple[tuple[str | None, str, type], ...] = (
    (None, "_train_schema", TrainConfig),
    (None, "_eval_schema", EvalConfig),
    ("data", "_schema", DataConfig),
    ("model", "_schema", ModelConfig),
    ("model/encoder", "_edsr_baseline_schema", EDSRBaselineConfig),
    ("model/encoder", "_rdn_schema", RDNConfig),
    ("model/encoder", "_swinir_schema", SwinIRConfig),
    ("model/head", "_liif_schema", LIIFHeadConfig),
    ("model/head", "_lte_schema", LTEHeadConfig),
    ("model/head", "_metasr_schema", MetaSRHeadConfig),
    ("model/head", "_lmliif_schema", LMLIIFHeadConfig),
    ("model/head", "_lmlte_schema", LMLTEHeadConfig),
    ("model/head", "_lmciaosr_schema", LMCiaoSRHeadConfig),
)


def register_schemas() -> None:
    """Store every schema in Hydra's ``ConfigStore`` (idempotent)."""
    store = ConfigStore.instance()
    for group, name, node in SCHEMAS:
        store.store(group=group, name=name, node=node)
