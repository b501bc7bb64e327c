"""What a pose head returns: joints, a per-joint confidence, and the maps its training loss needs."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch


@dataclass
class HeadOutput:
    """One forward pass of a pose network.

    Attributes:
        joints: (B, K, 2) box-normalized (x, y) (Eq. 1).
        confidence: (B, K) in [0, 1]: the heatmap peak (Tompson), the probability mass near the expected
            position (DSNT), or a learned score (fully-connected head); higher means more likely right.
        logits: (B, K, m, n) heatmaps before normalization (DSNT: spatial-softmax logits; Tompson: the
            regressed maps themselves), None for the fully-connected head.
        score_logits: (B, K) the fully-connected head's learned score before its sigmoid, else None.
        fine: (B, K, f, f) position-refinement heatmaps in each joint's window (Tompson), else None.
        windows: (B, K, 4) those windows (c_x, c_y, w, h), box-normalized, else None.
    """

    joints: torch.Tensor
    confidence: torch.Tensor
    logits: torch.Tensor | None = None
    score_logits: torch.Tensor | None = None
    fine: torch.Tensor | None = None
    windows: torch.Tensor | None = None

    def select(self, joint: torch.Tensor) -> HeadOutput:
        """Read output `joint[n]` of item n (the refinement stage's read-out: the crop of joint i reads its
        output i), keeping a joint axis of length 1.

        Args:
            joint: (B,) long.

        Returns:
            A HeadOutput whose fields have K = 1.
        """
        rows = torch.arange(len(joint), device=joint.device)

        def pick(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t[rows, joint][:, None]

        return replace(self, **{f: pick(getattr(self, f)) for f in
                                ("joints", "confidence", "logits", "score_logits", "fine", "windows")})


def head_output(model: torch.nn.Module, images: torch.Tensor) -> HeadOutput:
    """`model.output(images)` for the heads that have one; the plain joints with confidence NaN (unknown) for
    networks without (the paper's AlexNet, the demo network)."""
    if hasattr(model, "output"):
        return model.output(images)
    joints = model(images)
    return HeadOutput(joints, torch.full(joints.shape[:2], float("nan"), device=joints.device))
