"""Backbones and MLP heads for SSL training: a CPU-sized convnet, ResNet-18 with the CIFAR stem, torchvision's
ResNets, and projector / predictor MLPs built from a size spec. torchvision is imported only for its models.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

ARCHS = ("small", "cifar_resnet18", "resnet18", "resnet50")


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SmallConvNet(nn.Module):
    """CPU-friendly backbone: 4 conv-BN-ReLU stages (width w, 2w, 4w, 8w; stride 1, 2, 2, 2) + global pool."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(conv_bn_relu(3, width), conv_bn_relu(width, 2 * width, 2),
                                      conv_bn_relu(2 * width, 4 * width, 2), conv_bn_relu(4 * width, 8 * width, 2),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out_dim = 8 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs) with a 1x1 projection shortcut when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                                  nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(cout))
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class CifarResNet18(nn.Module):
    """ResNet-18 for 32 px images: 3x3 stride-1 stem, no max-pool; ``width`` 64 is the standard network."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn_relu(3, width)]
        cin = width
        for i, stride in enumerate((1, 2, 2, 2)):
            cout = width * 2 ** i
            layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out_dim = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def build_backbone(arch: str, width: int) -> nn.Module:
    """Backbone returning pooled features; ``.out_dim`` is their size."""
    if arch == "small":
        return SmallConvNet(width)
    if arch == "cifar_resnet18":
        return CifarResNet18(width)
    import torchvision
    net = getattr(torchvision.models, arch)(weights=None)
    net.out_dim = net.fc.in_features
    net.fc = nn.Identity()
    return net


def build_mlp(in_dim: int, spec: str) -> tuple[nn.Sequential, int]:
    """MLP from a spec such as ``"2048-2048-256"``: Linear+BN+ReLU per hidden size, then a bias-free Linear."""
    try:
        sizes = [int(s) for s in spec.split("-")]
    except ValueError:
        raise ValueError(f"MLP spec {spec!r} must be sizes joined by '-', e.g. '2048-2048-256'") from None
    if not sizes or min(sizes) < 1:
        raise ValueError(f"MLP spec {spec!r} must hold positive sizes")
    layers: list[nn.Module] = []
    for size in sizes[:-1]:
        layers += [nn.Linear(in_dim, size, bias=False), nn.BatchNorm1d(size), nn.ReLU(inplace=True)]
        in_dim = size
    layers.append(nn.Linear(in_dim, sizes[-1], bias=False))
    return nn.Sequential(*layers), sizes[-1]
