"""Checkpoints: tensors and JSON-able metadata only, loaded with weights_only=True, verified by a checksum.

Format (format_version 1):
    {"format_version": 1, "model": state_dict, "meta": {...JSON-able...}, "weights_sha256": str,
     and for resumable training checkpoints: "optimizer", "scheduler", "rng_torch", "progress"}
`meta` is a `models.meta.ModelMeta` as a dict; `load_checkpoint` gives it back typed, and upgrades the metadata
and weights of checkpoints written by older versions (`models.meta.UPGRADES`, `STATE_UPGRADES`).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deeppose.errors import DeepPoseError
from deeppose.files import atomic_write
from deeppose.models.meta import STATE_UPGRADES, ModelMeta, meta_from_dict, meta_to_dict

FORMAT_VERSION = 1


def state_dict_sha256(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the names, shapes, dtypes and bytes of a state_dict, in key order."""
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        h.update(f"{key}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_checkpoint(path: str | Path, model: nn.Module, meta: ModelMeta, **extra: Any) -> Path:
    """Write a checkpoint atomically (temporary file + rename): a crash never leaves a half-written file.

    Args:
        model: the unwrapped module (its state_dict is saved).
        meta: what the model is (architecture, skeleton, input size, provenance).
        extra: further entries (optimizer/scheduler state dicts, RNG states), tensors and primitives only.
    """
    return write_checkpoint(path, {k: v.detach().cpu() for k, v in model.state_dict().items()}, meta, **extra)


def write_checkpoint(path: str | Path, state: dict[str, torch.Tensor], meta: ModelMeta, **extra: Any) -> Path:
    """Write weights, metadata and their checksum (and `extra` entries) atomically."""
    payload = {"format_version": FORMAT_VERSION, "model": state, "meta": meta_to_dict(meta),
               "weights_sha256": state_dict_sha256(state), **extra}
    return atomic_write(path, lambda tmp: torch.save(payload, tmp), durable=True)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and verify a checkpoint, its "meta" typed (`ModelMeta`) and older versions upgraded; DeepPoseError
    naming the file if it is missing, unsafe, tampered with, or does not describe a model."""
    path = Path(path)
    if not path.is_file():
        raise DeepPoseError(path, "checkpoint not found")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":
        raise DeepPoseError(path, "not a torch checkpoint (not a zip archive; truncated or another format)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a pickle with code in it, a damaged archive
        text = str(exc)
        match = re.search(r"(?:unsupported GLOBAL|Unsupported global: GLOBAL) ([\w.]+)", text, re.IGNORECASE)
        reason = (f"refused to unpickle {match.group(1)}: only tensors and plain data are loaded" if match
                  else (text.strip().splitlines() or [type(exc).__name__])[0][:160])
        raise DeepPoseError(path, f"not a loadable deeppose checkpoint ({reason})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "meta" not in ckpt:
        raise DeepPoseError(path, "not a deeppose checkpoint (no 'model' and 'meta' entries)")
    if ckpt.get("format_version") != FORMAT_VERSION:
        raise DeepPoseError(path, f"checkpoint format {ckpt.get('format_version')!r}, this version reads "
                                  f"{FORMAT_VERSION}")
    if ckpt.get("weights_sha256") != state_dict_sha256(ckpt["model"]):
        raise DeepPoseError(path, "weights checksum mismatch: the file was modified or is corrupt")
    version = ckpt["meta"].get("schema", 1) if isinstance(ckpt["meta"], dict) else 0
    try:
        ckpt["meta"] = meta_from_dict(ckpt["meta"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DeepPoseError(path, f"checkpoint metadata does not describe a model ({type(exc).__name__}: {exc})"
                            ) from None
    for v in range(version, ckpt["meta"].schema):
        ckpt["model"] = STATE_UPGRADES[v](ckpt["model"])
    return ckpt


def model_from_meta(meta: ModelMeta) -> nn.Module:
    """Build (untrained) the model a checkpoint describes: a regressor, a cascade, a person localizer or detector,
    or a pipeline (a localizer or detector in front of a pose model)."""
    from deeppose.models.factory import create_model

    if meta.kind == "pipeline":
        from deeppose.models.localizer import PosePipeline

        return PosePipeline(model_from_meta(meta.localizer), model_from_meta(meta.pose))
    if meta.kind == "cascade":
        from deeppose.models.cascade import Cascade
        from deeppose.skeleton import get_skeleton

        skeleton, c = get_skeleton(meta.skeleton), meta.cascade
        refiners = [create_model(r.model, meta.num_joints, c.crop_size) for r in meta.refiners]
        return Cascade(model_from_meta(meta.stage1), refiners, skeleton, c.sigma, c.crop_size, c.source_size,
                       [skeleton.index(name) for name in c.joints])
    network = create_model(meta.model, meta.num_joints, meta.input_size)
    if meta.kind == "localizer":
        from deeppose.models.localizer import PersonLocalizer

        return PersonLocalizer(network)
    if meta.kind == "detector":
        from deeppose.models.detector import PersonDetector

        return PersonDetector(network)
    return network


def model_from_checkpoint(path: str | Path) -> tuple[nn.Module, ModelMeta]:
    """Rebuild the model a checkpoint describes and load its weights with strict=True.

    Returns:
        (model in eval mode, its metadata).
    """
    ckpt = load_checkpoint(path)
    meta = ckpt["meta"]
    try:
        model = model_from_meta(meta)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DeepPoseError(path, f"checkpoint metadata does not describe a model ({exc})") from None
    load_weights(model, ckpt["model"], path, meta.model.arch if meta.model else meta.kind)
    model.eval()
    return model, meta


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], path: str | Path, arch: str) -> None:
    """Load a checkpoint's state_dict into `model` with strict=True (fp16 weights are cast to the model's dtype;
    an old ImageNet classifier is dropped); DeepPoseError naming `path` when they do not fit."""
    from deeppose.models.factory import unused_classifier_keys

    unused = set(unused_classifier_keys(state))
    try:
        model.load_state_dict({k: v for k, v in state.items() if k not in unused}, strict=True)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        raise DeepPoseError(path, f"weights do not fit architecture {arch!r}: "
                                  f"{' '.join(lines[1:3])[:240]}") from None


def part_state(state: dict[str, torch.Tensor], meta: ModelMeta, part: str) -> tuple[dict[str, torch.Tensor],
                                                                                   ModelMeta]:
    """The weights and meta of a part of a pipeline ("pose", "localizer") or a cascade ("stage1")."""
    prefix = f"{part}."
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}, getattr(meta, part)


def init_from_checkpoint(model: nn.Module, path: str | Path) -> None:
    """Start `model` from a trained checkpoint's weights (`model.init`, fine-tuning): a regressor, or the stage 1
    of a cascade or of a pipeline's pose model; DeepPoseError naming the file when it is unreadable or does not
    fit."""
    ckpt = load_checkpoint(path)
    state, meta = ckpt["model"], ckpt["meta"]
    if meta.kind == "pipeline":
        state, meta = part_state(state, meta, "pose")
    if meta.kind == "cascade":
        state, meta = part_state(state, meta, "stage1")
    load_weights(model, state, path, meta.model.arch if meta.model else meta.kind)


def shipped_state(state: dict[str, torch.Tensor], half: bool) -> dict[str, torch.Tensor]:
    """Inference weights: no unused ImageNet classifier, floats in fp16 if `half`."""
    from deeppose.models.factory import unused_classifier_keys

    unused = set(unused_classifier_keys(state))
    return {k: v.half() if half and v.is_floating_point() else v for k, v in state.items() if k not in unused}


def ship_checkpoint(src: str | Path, dst: str | Path, half: bool = True) -> Path:
    """Write an inference-only copy of a checkpoint: weights (fp16 floats if `half`) and meta, no optimizer state
    and no unused ImageNet classifier.

    fp16 storage halves the file; `model_from_checkpoint` loads it into the float32 model unchanged otherwise.
    """
    ckpt = load_checkpoint(src)
    meta = ckpt["meta"].with_provenance(shipped_from=Path(src).name, weights_dtype="float16" if half else "float32")
    return write_checkpoint(dst, shipped_state(ckpt["model"], half), meta)


def bundle_checkpoint(pose: str | Path, localizer: str | Path, dst: str | Path, half: bool = True) -> Path:
    """Write a pipeline checkpoint: a person detector (or one-person localizer) in front of a pose model (stage 1 or
    cascade), one file (`ship`'s format: fp16 weights if `half`, no optimizer state); DeepPoseError naming a file
    that does not fit."""
    parts = {}
    for name, path in (("pose", pose), ("localizer", localizer)):
        ckpt = load_checkpoint(path)
        kind = ckpt["meta"].kind
        if (kind in ("localizer", "detector")) != (name == "localizer") or kind == "pipeline":
            wanted = "person detector or localizer" if name == "localizer" else "pose model"
            raise DeepPoseError(path, f"expected a {wanted} checkpoint for the pipeline's {name}, got kind {kind!r}")
        parts[name] = (ckpt["model"], ckpt["meta"].with_provenance(shipped_from=Path(path).name))
    pose_meta, loc_meta = parts["pose"][1], parts["localizer"][1]
    if pose_meta.skeleton != loc_meta.skeleton:
        raise DeepPoseError(localizer, f"the localizer predicts {loc_meta.skeleton} joints, the pose model "
                                       f"{pose_meta.skeleton}")
    state = {f"{name}.{k}": v for name, (sd, _) in parts.items() for k, v in shipped_state(sd, half).items()}
    meta = ModelMeta("pipeline", pose_meta.skeleton, pose_meta.num_joints, pose_meta.input_size, pose=pose_meta,
                     localizer=loc_meta, provenance={"weights_dtype": "float16" if half else "float32"})
    return write_checkpoint(dst, state, meta)
