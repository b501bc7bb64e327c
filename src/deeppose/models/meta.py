"""Typed checkpoint metadata: what a checkpoint says about the model it holds, written and read here only.

    meta = ModelMeta("stage1", "lsp14", 14, 160, model=ModelConfig(...), provenance={"config": ...})
    meta_to_dict(meta)       # JSON-able, stored in the checkpoint
    meta_from_dict(d)        # back, upgrading what older versions wrote (`UPGRADES`)

Kinds: "stage1" (a regressor), "refiner" (a cascade stage s >= 2 as trained alone), "cascade" (stage 1 and its
refiners), "localizer" (the one-person localizer), "detector" (the person detector), "pipeline" (a localizer or a
detector in front of a pose model: its `localizer` part is whichever finds the people).
Schema history: 1 (no "schema" key) kept every field flat, the architecture as a loose dict whose missing keys
meant the defaults of the day; 2 is this module's dataclasses.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch

from deeppose.config import ModelConfig
from deeppose.skeleton import get_skeleton

SCHEMA_VERSION = 2
KINDS = ("stage1", "refiner", "cascade", "localizer", "detector", "pipeline")
# What a schema-1 architecture dict meant by a missing key: the create_model defaults of that time.
LEGACY_MODEL_DEFAULTS = {"head": "fc", "width": 1.0, "dropout": None, "stride": 32, "top_stride": 32, "reduce": 128,
                         "hidden": 0, "freeze_bn": False, "channels_last": False, "score": False, "refine": False}


@dataclass
class CascadeGeometry:
    """How a cascade's refinement stages cut their sub-images (Eq. 7): box side sigma * diam(y), crop and source
    sizes, and the joints they refine (names)."""

    sigma: float
    crop_size: int
    source_size: int
    joints: list[str]


@dataclass
class BoxRule:
    """A finder's person box (`serve.localize`): box_scale x the joints' extent, `recrops` re-crops (None: the
    default), and person_score = sigmoid(a * logit + c * log(the pose network's mean joint confidence in the box)
    + b) (a logistic scaling fitted on validation; c = 0: the finder's logit alone, Platt scaling)."""

    box_scale: float = 1.33
    recrops: int | None = None
    a: float = 1.0
    b: float = 0.0
    c: float = 0.0


@dataclass
class ModelMeta:
    """A checkpoint's model.

    Attributes:
        kind: one of KINDS.
        skeleton, num_joints: the joints it predicts.
        input_size: side of its input crop (a refiner's: its sub-image).
        model: its network's architecture (stage1, refiner, localizer).
        cascade: the refinement geometry (cascade, refiner).
        stage1, refiners: a cascade's parts.
        pose, localizer: a pipeline's parts.
        box_rule: a localizer's box rule and presence calibration.
        provenance: how it was made, JSON-able: the training config, validation metrics, training time, step and
            epoch, parameters, the file it was shipped from, weights dtype...
        schema: SCHEMA_VERSION of the writer.
    """

    kind: str
    skeleton: str
    num_joints: int
    input_size: int
    model: ModelConfig | None = None
    cascade: CascadeGeometry | None = None
    stage1: ModelMeta | None = None
    refiners: list[ModelMeta] = field(default_factory=list)
    pose: ModelMeta | None = None
    localizer: ModelMeta | None = None
    box_rule: BoxRule | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA_VERSION

    @property
    def stages(self) -> int:
        """The stages of its pose model: 1 + the refiners of a cascade (of a pipeline's pose model)."""
        if self.kind == "pipeline" and self.pose is not None:
            return self.pose.stages
        return 1 + len(self.refiners)

    def with_provenance(self, **facts: Any) -> ModelMeta:
        """A copy with `facts` added to its provenance."""
        return dataclasses.replace(self, provenance={**self.provenance, **facts})


def meta_to_dict(meta: ModelMeta) -> dict[str, Any]:
    """The JSON-able dict a checkpoint stores."""
    return asdict(meta)


def model_config(d: dict[str, Any], defaults: dict[str, Any] | None = None) -> ModelConfig:
    """A ModelConfig from a stored architecture dict (unknown keys refused; missing ones from `defaults`, else
    ModelConfig's)."""
    names = {f.name for f in fields(ModelConfig)}
    if unknown := sorted(set(d) - names):
        raise ValueError(f"unknown architecture settings {unknown}")
    return ModelConfig(**{**(defaults or {}), **d})


def meta_from_dict(d: dict[str, Any]) -> ModelMeta:
    """A ModelMeta from a stored dict of any schema (older ones upgraded first); ValueError when it is not one."""
    if not isinstance(d, dict):
        raise ValueError(f"metadata is a {type(d).__name__}, not a mapping")
    version = d.get("schema", 1)
    if version > SCHEMA_VERSION:
        raise ValueError(f"metadata schema {version} is newer than this deeppose reads ({SCHEMA_VERSION}); upgrade")
    for v in range(version, SCHEMA_VERSION):
        d = UPGRADES[v](d)
    return _build(d)


def _part(d: dict[str, Any], key: str) -> ModelMeta | None:
    return None if d.get(key) is None else _build(d[key])


def _build(d: dict[str, Any]) -> ModelMeta:
    """A ModelMeta from a schema-2 dict (its parts recursively)."""
    if d["kind"] not in KINDS:
        raise ValueError(f"unknown model kind {d['kind']!r}; known: {', '.join(KINDS)}")
    return ModelMeta(
        d["kind"], d["skeleton"], int(d["num_joints"]), int(d["input_size"]),
        model=None if d.get("model") is None else model_config(d["model"]),
        cascade=None if d.get("cascade") is None else CascadeGeometry(**d["cascade"]),
        stage1=_part(d, "stage1"), refiners=[_build(r) for r in d.get("refiners", [])], pose=_part(d, "pose"),
        localizer=_part(d, "localizer"), box_rule=None if d.get("box_rule") is None else BoxRule(**d["box_rule"]),
        provenance=dict(d.get("provenance", {})), schema=SCHEMA_VERSION)


# schema 1 keys that are not provenance: they describe the model
_V1_MODEL_KEYS = ("kind", "arch", "model", "num_joints", "skeleton", "input_size", "stages", "sigma", "crop_size",
                  "source_size", "joints", "stage1", "refiners", "pose", "localizer", "box_scale", "recrops",
                  "calibration")


def upgrade_1_to_2(d: dict[str, Any], parent: dict[str, Any] | None = None) -> dict[str, Any]:
    """Schema 1 -> 2: the flat dict becomes the dataclasses' layout; a cascade's refiner entries (which held only
    their own fields) take skeleton, joints and geometry from the cascade; architecture dicts get the defaults
    their missing keys meant then (`LEGACY_MODEL_DEFAULTS`)."""
    kind = d.get("kind") or ("refiner" if parent is not None else "stage1")
    src = {**(parent or {}), **d} if parent is not None else d
    out: dict[str, Any] = {"kind": kind, "skeleton": src["skeleton"], "num_joints": src["num_joints"],
                           "input_size": src["crop_size"] if kind == "refiner" else src["input_size"],
                           "provenance": {k: v for k, v in d.items() if k not in _V1_MODEL_KEYS}, "schema": 2}
    if "model" in d:
        out["model"] = asdict(model_config(d["model"], LEGACY_MODEL_DEFAULTS))
    if kind in ("cascade", "refiner"):
        skeleton = get_skeleton(src["skeleton"])
        out["cascade"] = {"sigma": src["sigma"], "crop_size": src["crop_size"], "source_size": src["source_size"],
                          "joints": list(src.get("joints") or skeleton.joints)}
    if kind == "cascade":
        out["stage1"] = upgrade_1_to_2(d["stage1"])
        out["refiners"] = [upgrade_1_to_2(r, d) for r in d["refiners"]]
    if kind == "pipeline":
        out["pose"], out["localizer"] = upgrade_1_to_2(d["pose"]), upgrade_1_to_2(d["localizer"])
    if kind == "localizer":
        cal = d.get("calibration", {"a": 1.0, "b": 0.0})
        out["box_rule"] = {"box_scale": d.get("box_scale", 1.33), "recrops": d.get("recrops"), "a": cal["a"],
                           "b": cal["b"]}
        if "config" in out["provenance"]:
            out["provenance"]["config"] = upgrade_localizer_config_1_to_2(out["provenance"]["config"])
    return out


def upgrade_localizer_config_1_to_2(cfg: dict[str, Any]) -> dict[str, Any]:
    """A schema-1 localizer run config: its optimizer settings (lr, batch_size...) stood at the top level, and the
    views' jitter (rotation_deg, flip_prob, brightness, contrast) in `zoom`; they move to `optim` and
    `zoom.augment`."""
    cfg = dict(cfg)
    optim = {k: cfg.pop(k) for k in ("lr", "weight_decay", "batch_size", "warmup_steps", "min_lr_ratio") if k in cfg}
    if optim:
        cfg["optim"] = {**cfg.get("optim", {}), **optim}
    zoom = dict(cfg.get("zoom", {}))
    augment = {k: zoom.pop(k) for k in ("rotation_deg", "flip_prob", "brightness", "contrast") if k in zoom}
    if augment:
        cfg["zoom"] = {**zoom, "augment": {**zoom.get("augment", {}), **augment}}
    return cfg


UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: upgrade_1_to_2}


def upgrade_state_1_to_2(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Schema-1 weights -> 2: the fully-connected head now holds its learned score (`score.*` -> `head.score.*`)."""
    return {re.sub(r"(^|\.)score\.linear\.", r"\1head.score.linear.", k): v for k, v in state.items()}


STATE_UPGRADES: dict[int, Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]] = {1: upgrade_state_1_to_2}
