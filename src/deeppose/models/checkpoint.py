"""Checkpoints: tensors and JSON-able metadata only, loaded with weights_only=True, verified by a checksum.

Format (format_version 1):
    {"format_version": 1, "model": state_dict, "meta": {...JSON-able...}, "weights_sha256": str,
     and for resumable training checkpoints: "optimizer", "scheduler", "rng_torch"}
`meta` holds at least "arch", "model" (the model config dict), "num_joints", "skeleton" and "input_size".
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deeppose.errors import DeepPoseError

FORMAT_VERSION = 1


def state_dict_sha256(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the names, shapes, dtypes and bytes of a state_dict, in key order."""
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        h.update(f"{key}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict[str, Any], **extra: Any) -> Path:
    """Write a checkpoint atomically (temporary file + rename): a crash never leaves a half-written file.

    Args:
        model: the unwrapped module (its state_dict is saved).
        meta: JSON-able metadata (architecture, config, skeleton, metrics...).
        extra: further entries (optimizer/scheduler state dicts, RNG states), tensors and primitives only.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"format_version": FORMAT_VERSION, "model": state, "meta": meta,
               "weights_sha256": state_dict_sha256(state), **extra}
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and verify a checkpoint; DeepPoseError naming the file if it is missing, unsafe, or tampered with."""
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
    return ckpt


def network_from_meta(m: dict[str, Any], num_joints: int, input_size: int) -> nn.Module:
    """Build (untrained) the network a model config dict describes (keys of config.ModelConfig); channels_last
    memory layout when the config asks for it (it roughly halves the time of small-crop refiners on a CPU)."""
    from deeppose.models.factory import create_model

    model = create_model(m["arch"], num_joints, input_size, dropout=m.get("dropout"), width=m.get("width", 1.0),
                        stride=m.get("stride", 32), reduce=m.get("reduce", 128), hidden=m.get("hidden", 0),
                        freeze_bn=m.get("freeze_bn", False), head=m.get("head", "fc"),
                        top_stride=m.get("top_stride", 32), score=m.get("score", False),
                        refine=m.get("refine", False))
    return model.to(memory_format=torch.channels_last) if m.get("channels_last", False) else model


def model_from_meta(meta: dict[str, Any]) -> nn.Module:
    """Build (untrained) a stage-1 model or, by meta["kind"], a "cascade", a person "localizer", or a "pipeline"
    (a localizer in front of a pose model)."""
    if meta.get("kind") == "localizer":
        from deeppose.models.localizer import PersonLocalizer

        return PersonLocalizer(network_from_meta(meta["model"], meta["num_joints"], meta["input_size"]))
    if meta.get("kind") == "pipeline":
        from deeppose.models.localizer import PosePipeline

        return PosePipeline(model_from_meta(meta["localizer"]), model_from_meta(meta["pose"]))
    if meta.get("kind") == "cascade":
        from deeppose.models.cascade import Cascade
        from deeppose.skeleton import get_skeleton

        stage1 = model_from_meta(meta["stage1"])
        refiners = [network_from_meta(r["model"], meta["num_joints"], meta["crop_size"]) for r in meta["refiners"]]
        skeleton = get_skeleton(meta["skeleton"])
        joints = [skeleton.index(name) for name in meta.get("joints", skeleton.joints)]
        return Cascade(stage1, refiners, skeleton, meta["sigma"], meta["crop_size"], meta["source_size"], joints)
    return network_from_meta(meta["model"], meta["num_joints"], meta["input_size"])


def model_from_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model (stage 1 or a cascade) a checkpoint describes and load its weights with strict=True.

    Returns:
        (model in eval mode, meta).
    """
    ckpt = load_checkpoint(path)
    meta = ckpt["meta"]
    try:
        model = model_from_meta(meta)
    except (KeyError, TypeError, ValueError) as exc:
        raise DeepPoseError(path, f"checkpoint metadata does not describe a model ({exc})") from None
    load_weights(model, ckpt["model"], path, meta.get("arch"))
    model.eval()
    return model, meta


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], path: str | Path, arch: str | None) -> None:
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


def init_from_checkpoint(model: nn.Module, path: str | Path) -> None:
    """Start `model` from a trained checkpoint's weights (`model.init`, fine-tuning): a stage-1 checkpoint, or
    the stage 1 of a cascade or of a pipeline's pose model; DeepPoseError naming the file when it is unreadable
    or does not fit."""
    ckpt = load_checkpoint(path)
    state, meta = ckpt["model"], ckpt["meta"]
    if meta.get("kind") == "pipeline":
        state = {k.removeprefix("pose."): v for k, v in state.items() if k.startswith("pose.")}
        meta = meta["pose"]
    if meta.get("kind") == "cascade":
        state = {k.removeprefix("stage1."): v for k, v in state.items() if k.startswith("stage1.")}
        meta = meta.get("stage1", {})
    load_weights(model, state, path, meta.get("arch"))


def ship_checkpoint(src: str | Path, dst: str | Path, half: bool = True) -> Path:
    """Write an inference-only copy of a checkpoint: weights (fp16 floats if `half`) and meta, no optimizer state
    and no unused ImageNet classifier.

    fp16 storage halves the file; `model_from_checkpoint` loads it into the float32 model unchanged otherwise.
    """
    from deeppose.models.factory import unused_classifier_keys

    ckpt = load_checkpoint(src)
    unused = set(unused_classifier_keys(ckpt["model"]))
    state = {k: v.half() if half and v.is_floating_point() else v for k, v in ckpt["model"].items() if k not in unused}
    meta = {**ckpt["meta"], "shipped_from": Path(src).name, "weights_dtype": "float16" if half else "float32"}
    return write_inference_checkpoint(dst, state, meta)


def write_inference_checkpoint(dst: str | Path, state: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write weights and meta (no optimizer state) with their checksum, atomically (temporary file + rename)."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format_version": FORMAT_VERSION, "model": state, "meta": meta,
               "weights_sha256": state_dict_sha256(state)}
    tmp = dst.with_name(f".{dst.name}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, dst)
    return dst


def bundle_checkpoint(pose: str | Path, localizer: str | Path, dst: str | Path, half: bool = True) -> Path:
    """Write a pipeline checkpoint: a person localizer in front of a pose model (stage 1 or cascade), one file
    (`ship`'s format: fp16 weights if `half`, no optimizer state); DeepPoseError naming a file that does not fit."""
    from deeppose.models.factory import unused_classifier_keys

    parts = {}
    for name, path, kind in (("pose", pose, None), ("localizer", localizer, "localizer")):
        ckpt = load_checkpoint(path)
        if (ckpt["meta"].get("kind") == "localizer") != (kind == "localizer") or ckpt["meta"].get("kind") == "pipeline":
            raise DeepPoseError(path, f"expected a {'person localizer' if kind else 'pose model'} checkpoint for "
                                      f"the pipeline's {name}, got kind {ckpt['meta'].get('kind', 'stage1')!r}")
        unused = set(unused_classifier_keys(ckpt["model"]))
        parts[name] = ({k: v for k, v in ckpt["model"].items() if k not in unused}, ckpt["meta"], Path(path).name)
    if parts["pose"][1]["skeleton"] != parts["localizer"][1]["skeleton"]:
        raise DeepPoseError(localizer, f"the localizer predicts {parts['localizer'][1]['skeleton']} joints, the pose "
                                       f"model {parts['pose'][1]['skeleton']}")
    state = {f"{name}.{k}": (v.half() if half and v.is_floating_point() else v)
             for name, (sd, _, _) in parts.items() for k, v in sd.items()}
    meta = {"kind": "pipeline", "skeleton": parts["pose"][1]["skeleton"],
            "num_joints": parts["pose"][1]["num_joints"], "input_size": parts["pose"][1]["input_size"],
            "pose": {**parts["pose"][1], "shipped_from": parts["pose"][2]},
            "localizer": {**parts["localizer"][1], "shipped_from": parts["localizer"][2]},
            "weights_dtype": "float16" if half else "float32"}
    return write_inference_checkpoint(dst, state, meta)
