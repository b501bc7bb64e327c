"""MobileNetV2 (Sandler et al. 2018) with torchvision's state_dict key layout, so its ImageNet files load.

Only the feature extractor matters for pose; the ImageNet classifier keys (`classifier.*`) are dropped
when weights are loaded into a pose model.

Padding: PyTorch pads every 3x3 convolution by one pixel on each side ("symmetric"). TensorFlow's "SAME" pads a
stride-2 convolution of an even-sided input by one pixel on the right and bottom only, so a network trained in TF
and run with symmetric padding sees every stride-2 stage shifted by half a pixel (imported MoveNet features then
correlate 0.35 with the TFLite interpreter's; with "tf_same" 0.997). `padding="tf_same"` reproduces TF exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PADDINGS = ("symmetric", "tf_same")

# (expansion t, output channels c, repeats n, first stride s) from the paper's Table 2.
INVERTED_RESIDUAL_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                             (6, 160, 3, 2), (6, 320, 1, 1))


def _make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def tf_same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "SAME" padding of one axis: (before, after), the odd pixel after.

    The output has ceil(size / stride) samples; the padding needed for that is split with the extra pixel at the
    end (right or bottom), e.g. (0, 1) for a 3x3 stride-2 convolution of an even size, (1, 1) of an odd one.
    """
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """A Conv2d padded as TensorFlow's "SAME" (`tf_same_pads`) instead of PyTorch's fixed symmetric padding.

    Same parameters (and state_dict keys) as nn.Conv2d; its own `padding` is 0 and the pads are computed from each
    input's size. (B, C, H, W) -> (B, C', ceil(H / s), ceil(W / s)).
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, groups: int = 1) -> None:
        super().__init__(c_in, c_out, kernel, stride, 0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = tf_same_pads(int(x.shape[-2]), self.kernel_size[0], self.stride[0])
        left, right = tf_same_pads(int(x.shape[-1]), self.kernel_size[1], self.stride[1])
        return super().forward(F.pad(x, (left, right, top, bottom)))


def conv(c_in: int, c_out: int, kernel: int, stride: int, groups: int = 1, padding: str = "symmetric") -> nn.Conv2d:
    """A bias-free convolution padded the `padding` way ("symmetric": PyTorch's; "tf_same": TensorFlow's SAME).

    Stride-1 convolutions pad alike both ways, so only strided ones differ.
    """
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    if padding == "tf_same" and stride > 1:
        return SameConv2d(c_in, c_out, kernel, stride, groups)
    return nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False)


class ConvBNReLU6(nn.Sequential):
    """Conv2d -> BatchNorm2d -> ReLU6 (keys .0, .1 as torchvision's Conv2dNormActivation)."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1, groups: int = 1,
                 padding: str = "symmetric") -> None:
        super().__init__(conv(c_in, c_out, kernel, stride, groups, padding), nn.BatchNorm2d(c_out),
                         nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise (3x3) -> project (1x1, linear), with a residual when shapes match."""

    def __init__(self, c_in: int, c_out: int, stride: int, expand: int, padding: str = "symmetric") -> None:
        super().__init__()
        hidden = round(c_in * expand)
        self.out_channels = c_out
        self.use_res_connect = stride == 1 and c_in == c_out
        layers: list[nn.Module] = [] if expand == 1 else [ConvBNReLU6(c_in, hidden, kernel=1)]
        layers += [ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden, padding=padding),
                   nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 features (torchvision layout: `features.0` .. `features.18`, `classifier.1`).

    Args:
        width_mult: channel multiplier (1.0 matches the ImageNet weights).
        num_classes: size of the ImageNet classifier (kept so torchvision files load with strict=True).
        padding: "symmetric" (PyTorch's, the torchvision weights') or "tf_same" (TensorFlow's SAME: weights
            imported from a TF model, e.g. `models.tflite_import`, run exactly as they were trained).
    """

    def __init__(self, width_mult: float = 1.0, num_classes: int = 1000, padding: str = "symmetric") -> None:
        super().__init__()
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        self.padding = padding
        c_in = _make_divisible(32 * width_mult)
        self.last_channel = _make_divisible(1280 * max(1.0, width_mult))
        layers: list[nn.Module] = [ConvBNReLU6(3, c_in, stride=2, padding=padding)]
        self.stage_ends: list[int] = []  # feature index after which the stride doubles next
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            c_out = _make_divisible(c * width_mult)
            for i in range(n):
                if i == 0 and s == 2:
                    self.stage_ends.append(len(layers) - 1)
                layers.append(InvertedResidual(c_in, c_out, s if i == 0 else 1, t, padding))
                c_in = c_out
        layers.append(ConvBNReLU6(c_in, self.last_channel, kernel=1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.last_channel, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def feature_channels(self, stride: int) -> int:
        """Channels of the feature map at output stride 4, 8, 16 or 32."""
        return self.features[self.feature_end(stride)].out_channels if stride < 32 else self.last_channel

    def feature_end(self, stride: int) -> int:
        """Index of the last `features` layer that runs at output `stride` (4, 8, 16 or 32)."""
        if stride == 32:
            return len(self.features) - 1
        ends = {4: 0, 8: 1, 16: 2}  # stage_ends[k] precedes the block that goes to stride 2 ** (k + 2)
        if stride not in ends:
            raise ValueError(f"MobileNetV2 features exist at stride 4, 8, 16 or 32, not {stride}")
        return self.stage_ends[ends[stride] + 1]

    def truncate(self, stride: int) -> None:
        """Drop the layers deeper than output `stride` (for heads that never read them), in place."""
        self.features = self.features[: self.feature_end(stride) + 1]

    def forward_features(self, x: torch.Tensor, stride: int = 32) -> torch.Tensor:
        """(B, 3, H, W) normalized images -> (B, C, H / stride, W / stride) features."""
        return self.features[: self.feature_end(stride) + 1](x)

    def forward_pyramid(self, x: torch.Tensor, strides: tuple[int, ...]) -> list[torch.Tensor]:
        """(B, 3, H, W) normalized images -> the features at each of `strides` (ascending), in one pass."""
        return self.forward_layers(x, tuple(self.feature_end(s) for s in strides))

    def forward_layers(self, x: torch.Tensor, indices: tuple[int, ...]) -> list[torch.Tensor]:
        """(B, 3, H, W) normalized images -> the outputs of `features[i]` for each i of `indices` (ascending), in
        one pass."""
        out = []
        for i, layer in enumerate(self.features[: indices[-1] + 1]):
            x = layer(x)
            if i in indices:
                out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1)
        return self.classifier(x)
