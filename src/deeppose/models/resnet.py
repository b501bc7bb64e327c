"""ResNet-18/34/50 (He et al. 2016) with torchvision's state_dict key layout (v1.5: stride on the 3x3 conv)."""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, c_in: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


RESNET_DEPTHS = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)), 50: (Bottleneck, (3, 4, 6, 3))}


class ResNet(nn.Module):
    """ResNet with keys conv1, bn1, layer1..layer4, fc (torchvision layout)."""

    def __init__(self, depth: int = 18, num_classes: int = 1000) -> None:
        super().__init__()
        if depth not in RESNET_DEPTHS:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNET_DEPTHS)}, got {depth}")
        block, counts = RESNET_DEPTHS[depth]
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        c_in, layers = 64, []
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), counts)):
            stride = 1 if i == 0 else 2
            down = None
            if stride != 1 or c_in != planes * block.expansion:
                down = nn.Sequential(nn.Conv2d(c_in, planes * block.expansion, 1, stride, bias=False),
                                     nn.BatchNorm2d(planes * block.expansion))
            blocks = [block(c_in, planes, stride, down)]
            c_in = planes * block.expansion
            blocks += [block(c_in, planes) for _ in range(n - 1)]
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        self.channels = {4: 64 * block.expansion, 8: 128 * block.expansion, 16: 256 * block.expansion,
                         32: 512 * block.expansion}
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def feature_channels(self, stride: int) -> int:
        """Channels of the feature map at output stride 4, 8, 16 or 32."""
        if stride not in self.channels:
            raise ValueError(f"ResNet features exist at stride 4, 8, 16 or 32, not {stride}")
        return self.channels[stride]

    def forward_features(self, x: torch.Tensor, stride: int = 32) -> torch.Tensor:
        """(B, 3, H, W) normalized images -> (B, C, H / stride, W / stride) features."""
        return self.forward_pyramid(x, (stride,))[0]

    def forward_pyramid(self, x: torch.Tensor, strides: tuple[int, ...]) -> list[torch.Tensor]:
        """(B, 3, H, W) normalized images -> the features at each of `strides` (ascending), in one pass."""
        for s in strides:
            self.feature_channels(s)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        out = []
        for s, layer in ((4, self.layer1), (8, self.layer2), (16, self.layer3), (32, self.layer4)):
            if s > strides[-1]:
                break
            x = layer(x)
            if s in strides:
                out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.forward_features(x), 1), 1))
