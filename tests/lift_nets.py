"""Networks written in plain PyTorch, the way torchvision and the papers' code write them,
for the lifting tests. Nothing here imports smashc."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn


class BasicBlock(nn.Module):
    """CIFAR ResNet unit, post-activation; option A: subsample and zero-pad channels."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.pad = stride, cout - cin

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x
        if self.stride != 1 or self.pad:
            shortcut = F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, 0, self.pad))
        return F.relu(out + shortcut)


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for CIFAR (He et al. 2016): n=3 is ResNet-20, n=9 ResNet-56."""

    def __init__(self, n: int = 3, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for i, w in enumerate((16, 32, 64)):
            units = [BasicBlock(cin, w, 1 if i == 0 else 2)]
            units += [BasicBlock(w, w) for _ in range(n - 1)]
            layers.append(nn.Sequential(*units))
            cin = w
        self.layer1, self.layer2, self.layer3 = layers
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(torch.flatten(x, 1))


class PreActBottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1):
        super().__init__()
        cout = width * self.expansion
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        out = self.conv3(F.relu(self.bn3(out)))
        return out + shortcut


class PreActResNet(nn.Module):
    """Pre-activation bottleneck ResNet (He et al., "Identity Mappings", 2016), small."""

    def __init__(self, units=(2, 2), classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        stages, cin = [], 16
        for i, n in enumerate(units):
            width = 8 * 2**i
            blocks = [PreActBottleneck(cin, width, 1 if i == 0 else 2)]
            blocks += [PreActBottleneck(width * 4, width) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = width * 4
        self.layers = nn.Sequential(*stages)
        self.bn = nn.BatchNorm2d(cin)
        self.linear = nn.Linear(cin, classes)

    def forward(self, x):
        out = self.layers(self.conv1(x))
        out = F.relu(self.bn(out))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


class WideBasic(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.equal = cin == cout and stride == 1
        self.shortcut = None if self.equal else nn.Conv2d(cin, cout, 1, stride, 0, bias=False)

    def forward(self, x):
        if self.equal:
            out = self.conv1(F.relu(self.bn1(x)))
            return x + self.conv2(F.relu(self.bn2(out)))
        x = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(x))))
        return self.shortcut(x) + out


class WideResNet(nn.Module):
    """WRN-depth-k (Zagoruyko & Komodakis 2016); WRN-16-4 by default."""

    def __init__(self, depth: int = 16, k: int = 4, classes: int = 10):
        super().__init__()
        n = (depth - 4) // 6
        widths = [16, 16 * k, 32 * k, 64 * k]
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        groups = []
        for i in range(3):
            blocks = [WideBasic(widths[i], widths[i + 1], 1 if i == 0 else 2)]
            blocks += [WideBasic(widths[i + 1], widths[i + 1], 1) for _ in range(n - 1)]
            groups.append(nn.Sequential(*blocks))
        self.block1, self.block2, self.block3 = groups
        self.bn = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], classes)

    def forward(self, x):
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = F.relu(self.bn(out))
        out = F.avg_pool2d(out, out.shape[-1]) if False else F.adaptive_avg_pool2d(out, 1)
        return self.fc(out.view(out.size(0), -1))


class DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int, bn_size: int = 4):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(cin, bn_size * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, 1, 1, bias=False)

    def forward(self, features: list):
        x = torch.cat(features, 1)
        x = self.conv1(self.relu1(self.norm1(x)))
        return self.conv2(self.relu2(self.norm2(x)))


class DenseBlock(nn.ModuleDict):
    def __init__(self, layers: int, cin: int, growth: int):
        super().__init__()
        for i in range(layers):
            self.add_module(f"denselayer{i + 1}", DenseLayer(cin + i * growth, growth))

    def forward(self, x):
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class DenseNetBC(nn.Module):
    """DenseNet-BC for CIFAR (Huang et al. 2017), torchvision's layer and block code."""

    def __init__(self, layers: int = 4, growth: int = 6, classes: int = 10):
        super().__init__()
        c = 2 * growth
        self.conv0 = nn.Conv2d(3, c, 3, 1, 1, bias=False)
        self.block1 = DenseBlock(layers, c, growth)
        c += layers * growth
        self.trans = nn.Sequential(
            nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c // 2, 1, bias=False), nn.AvgPool2d(2)
        )
        c //= 2
        self.block2 = DenseBlock(layers, c, growth)
        c += layers * growth
        self.norm = nn.BatchNorm2d(c)
        self.classifier = nn.Linear(c, classes)

    def forward(self, x):
        x = self.block2(self.trans(self.block1(self.conv0(x))))
        x = F.relu(self.norm(x))
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, (1, 1)), 1))


def conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class FractalPair(nn.Module):
    """Two FractalNet columns (Larsson et al. 2017): f2(z) = join(f1(f1(z)), f1(z)), the
    join a sum."""

    def __init__(self, cin: int, width: int):
        super().__init__()
        self.deep1 = conv_bn_relu(cin, width)
        self.deep2 = conv_bn_relu(width, width)
        self.shallow = conv_bn_relu(cin, width)

    def forward(self, x):
        return self.deep2(self.deep1(x)) + self.shallow(x)


class FractalNet(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.block1 = FractalPair(3, 16)
        self.pool1 = nn.MaxPool2d(2)
        self.block2 = FractalPair(16, 32)
        self.pool2 = nn.MaxPool2d(2)
        self.fc = nn.Linear(32, classes)

    def forward(self, x):
        x = self.pool2(self.block2(self.pool1(self.block1(x))))
        return self.fc(x.mean((2, 3)))


class ConvBNReLU6(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            ConvBNReLU6(cin, hidden, 1),
            ConvBNReLU6(hidden, hidden, 3, stride, hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2Stack(nn.Module):
    """MobileNetV2 (Sandler et al. 2018) inverted-residual stack, torchvision's unit code."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            ConvBNReLU6(3, 16),
            InvertedResidual(16, 16, 1, 4),
            InvertedResidual(16, 16, 1, 4),
            InvertedResidual(16, 24, 2, 4),
            InvertedResidual(24, 24, 1, 4),
            ConvBNReLU6(24, 64, 1),
        )
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(64, classes))

    def forward(self, x):
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.classifier(x)
