"""The networks a `Predictor` runs, behind one interface: PyTorch modules, or their ONNX export on ONNX Runtime.

    networks.pose(images, sources)  -> ((B, n, K, 2) box-normalized joints of stages 1..n, (B, K) confidence)
    networks.localize(images)       -> ((B, K, 2) coarse joints, (B,) presence logits)   (a one-person localizer)
    networks.detect(images)         -> ((B, 1, G, G) centre logits, (B, 2K, G, G) offsets)  (the person detector)

Images are (B, 3, S, S) uint8 RGB crops; sources (B, 3, R, R) uint8, the same boxes at a cascade's source size
(None for a stage-1 model).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from deeppose.errors import DeepPoseError
from deeppose.heads import head_output
from deeppose.models.cascade import Cascade
from deeppose.models.detector import PersonDetector
from deeppose.models.localizer import PersonLocalizer

BACKENDS = ("torch", "onnx")


class Networks(Protocol):
    def pose(self, images: torch.Tensor, sources: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]: ...

    def localize(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def detect(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


class TorchNetworks:
    """The PyTorch modules: a stage-1 regressor or a cascade (run to `stages`), and an optional finder (a person
    localizer or detector)."""

    def __init__(self, model: nn.Module, finder: nn.Module | None = None, stages: int | None = None) -> None:
        self.model = model.eval()
        self.finder = None if finder is None else finder.eval()
        self.stages = stages

    def pose(self, images: torch.Tensor, sources: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(self.model, Cascade):
            if sources is None:
                raise ValueError("a cascade needs the sources (the boxes sampled at source_size) as well")
            return self.model.forward_with_confidence(images, sources, stages=self.stages)
        out = head_output(self.model, images)
        return out.joints[:, None], out.confidence

    def localize(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(self.finder, PersonLocalizer):
            raise ValueError("no person localizer")
        return self.finder(images)

    def detect(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(self.finder, PersonDetector):
            raise ValueError("no person detector")
        return self.finder(images)


def onnx_session(path: str | Path, threads: int = 0):  # noqa: ANN201 (onnxruntime imported lazily)
    """An ONNX Runtime CPU session of `path` with `threads` intra-op threads (0: ONNX Runtime's choice);
    DeepPoseError naming the file when it is missing or not a model."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise DeepPoseError(path, "ONNX model not found")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # idle threads sleep instead of spinning between the small graph runs of one photo (crops are cut in Python in
    # between): measured 25.5 -> 16.6 ms per photo on 2 threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime raises its own exception types for a bad file
        raise DeepPoseError(path, f"not a loadable ONNX model ({str(exc).splitlines()[0][:200]})") from None


class OnnxNetworks:
    """The exported graphs (`serve.export`) on ONNX Runtime: the pose graph returns every stage (the first
    `stages` are kept), a localizer graph its joints and presence logit, a detector graph its centre logits and
    offsets."""

    def __init__(self, pose: str | Path, finder: str | Path | None = None, stages: int | None = None,
                 threads: int = 0) -> None:
        self.pose_session = onnx_session(pose, threads)
        self.finder_session = None if finder is None else onnx_session(finder, threads)
        self.finder_outputs = set() if finder is None else {o.name for o in self.finder_session.get_outputs()}
        self.stages = stages
        self.takes_sources = len(self.pose_session.get_inputs()) == 2

    def pose(self, images: torch.Tensor, sources: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        feeds = {"images": np.ascontiguousarray(images.numpy())}
        if self.takes_sources:
            if sources is None:
                raise ValueError("a cascade needs the sources (the boxes sampled at source_size) as well")
            feeds["sources"] = np.ascontiguousarray(sources.numpy())
        joints, confidence = self.pose_session.run(["joints", "confidence"], feeds)
        return torch.from_numpy(joints[:, : self.stages]), torch.from_numpy(confidence)

    def _find(self, names: list[str], what: str, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not set(names) <= self.finder_outputs:
            raise ValueError(f"no person {what}")
        a, b = self.finder_session.run(names, {"images": np.ascontiguousarray(images.numpy())})
        return torch.from_numpy(a), torch.from_numpy(b)

    def localize(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._find(["joints", "presence_logit"], "localizer", images)

    def detect(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._find(["centre_logits", "offsets"], "detector", images)
