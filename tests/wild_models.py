"""Small torch models of the kinds researchers run today, and their ONNX exports (issue 13, item 6).

Builders: a small ViT (patch-embedding conv, attention whose MatMuls multiply two activations,
LayerNorm, GELU, MLP), a small U-Net (ConvTranspose, skip concatenations), a 1-D audio net with an
80-tap Conv1d filter, a detector-style fully convolutional net exported with symbolic height and
width; and the supported CNNs of tests/test_torch_models.py (Conv2d/Linear/BatchNorm, ResNet-like
blocks, a short Conv1d). Each exports with the TorchScript exporter at opsets 13 and 17 and with the
dynamo exporter (``EXPORTERS``); exports are cached per process, as the dynamo one takes seconds.
``vit_macs`` (a formula) and ``hook_macs`` (forward hooks) count MACs without ONNX, to check counters against.
Needs torch (the test extra); imports it at module level, so import this only from tests that use torch.
"""

from __future__ import annotations

import functools
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import onnx
import torch
from torch import nn

EXPORTERS = ("opset13", "opset17", "dynamo")  # TorchScript at opsets 13 and 17; the dynamo exporter


class Attention(nn.Module):
    """Multi-head self-attention written out: q·kᵀ and softmax·v are MatMuls of two activations."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        scores = (q @ k.transpose(-2, -1)) * self.scale
        context = scores.softmax(dim=-1) @ v
        return self.proj(context.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    """A pre-norm transformer block: LayerNorm, attention, LayerNorm, MLP with GELU."""

    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """A small vision transformer: patch embedding by a strided conv, position embedding, blocks, mean-pool head."""

    def __init__(self, image: int = 32, patch: int = 8, dim: int = 32, depth: int = 2, heads: int = 2,
                 hidden: int = 64, classes: int = 10) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.pos = nn.Parameter(torch.randn(1, (image // patch) ** 2, dim) * 0.02)
        self.blocks = nn.Sequential(*(Block(dim, heads, hidden) for _ in range(depth)))
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos
        return self.head(self.norm(self.blocks(tokens)).mean(dim=1))


def vit_macs(batch: int = 1, image: int = 32, patch: int = 8, dim: int = 32, depth: int = 2, heads: int = 2,
             hidden: int = 64, classes: int = 10) -> int:
    """TinyViT's MACs by hand: patch conv, per block qkv, scores, context, proj and MLP, then the head."""
    tokens = (image // patch) ** 2
    embed = tokens * dim * 3 * patch * patch
    attention = 2 * heads * tokens * tokens * (dim // heads)  # q·kᵀ and scores·v
    block = tokens * dim * 3 * dim + attention + tokens * dim * dim + 2 * tokens * dim * hidden
    return batch * (embed + depth * block + dim * classes)


def hook_macs(model: nn.Module, x: torch.Tensor) -> int:
    """MACs of the Conv, ConvTranspose and Linear modules as torch runs them (forward hooks), apart from ONNX.

    A ConvTranspose is run again on ones with ones as weights: each output then sums 1 per product of an
    input value and a tap that lands on it, so the sum of all outputs is its real MACs.
    """
    found: list[int] = []

    def count(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        if isinstance(module, nn.ConvTranspose1d | nn.ConvTranspose2d):
            run = nn.functional.conv_transpose1d if isinstance(module, nn.ConvTranspose1d) else \
                nn.functional.conv_transpose2d
            ones = torch.ones_like(args[0], dtype=torch.float64)
            hits = run(ones, torch.ones_like(module.weight, dtype=torch.float64), None, module.stride, module.padding,
                       module.output_padding, module.groups, module.dilation)
            found.append(int(hits.sum()))
        elif isinstance(module, nn.Conv1d | nn.Conv2d):
            found.append(out.numel() * module.weight[0].numel())
        elif isinstance(module, nn.Linear):
            found.append(out.numel() * module.in_features)

    handles = [m.register_forward_hook(count) for m in model.modules()]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return sum(found)


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())


class TinyUNet(nn.Module):
    """A two-level U-Net: ConvTranspose up-sampling (k2 s2, and k3 s2 p1 output_padding 1), skip concatenations."""

    def __init__(self, width: int = 8, classes: int = 2) -> None:
        super().__init__()
        self.enc1, self.enc2, self.mid = _conv(3, width), _conv(width, 2 * width), _conv(2 * width, 4 * width)
        self.pool = nn.MaxPool2d(2)
        self.up2 = nn.ConvTranspose2d(4 * width, 2 * width, 2, stride=2)
        self.dec2 = _conv(4 * width, 2 * width)
        self.up1 = nn.ConvTranspose2d(2 * width, width, 3, stride=2, padding=1, output_padding=1)
        self.dec1 = _conv(2 * width, width)
        self.out = nn.Conv2d(width, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        mid = self.mid(self.pool(e2))
        d2 = self.dec2(torch.cat([self.up2(mid), e2], dim=1))
        return self.out(self.dec1(torch.cat([self.up1(d2), e1], dim=1)))


class AudioNet(nn.Module):
    """A raw-waveform 1-D CNN (M5-like): an 80-tap strided Conv1d front end, short convs, a linear head."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.front = nn.Sequential(nn.Conv1d(1, 16, 80, stride=4), nn.BatchNorm1d(16), nn.ReLU(), nn.MaxPool1d(4))
        self.body = nn.Sequential(nn.Conv1d(16, 32, 3), nn.BatchNorm1d(32), nn.ReLU(), nn.MaxPool1d(4),
                                  nn.Conv1d(32, 32, 3), nn.ReLU())
        self.head = nn.Linear(32, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.front(x)).mean(dim=-1))


class TinyDetector(nn.Module):
    """A fully convolutional detector: strided backbone, an up-sampled lateral sum (FPN-like), 1x1 class/box heads."""

    def __init__(self, width: int = 8, classes: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1), nn.ReLU())
        self.stage = nn.Sequential(nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU())
        self.lateral = nn.Conv2d(2 * width, width, 1)
        self.cls = nn.Conv2d(width, classes, 1)
        self.box = nn.Conv2d(width, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s1 = self.stem(x)
        top = nn.functional.interpolate(self.lateral(self.stage(s1)), size=s1.shape[-2:], mode="nearest")
        fused = s1 + top
        return self.cls(fused), self.box(fused)


class SmallCNN(nn.Module):
    """Conv2d, BatchNorm, ReLU, pooling, Linear: the plain CNN eyesim supports today."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 16, 3, stride=2, groups=2), nn.ReLU())
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(16 * 3 * 3, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class BasicBlock(nn.Module):
    """A ResNet basic block; a strided 1x1 projection on the shortcut when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.down = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                     if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(y + self.down(x))


class TinyResNet(nn.Module):
    """A ResNet-like net: stem, two stages of basic blocks, global pooling, fc."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.layer1 = nn.Sequential(BasicBlock(8, 8, 1), BasicBlock(8, 8, 1))
        self.layer2 = nn.Sequential(BasicBlock(8, 16, 2), BasicBlock(16, 16, 1))
        self.fc = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.layer2(self.layer1(self.stem(x))), 1), 1))


class ShortConv1d(nn.Module):
    """A 1-D CNN with short (3- and 5-tap) filters and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv1d(4, 8, 5, padding=2), nn.Conv1d(8, 8, 3, stride=2)
        self.fc = nn.Linear(8 * 15, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv2(torch.relu(self.conv1(x)))).flatten(1))


@dataclass(frozen=True)
class Case:
    """A model to export: its builder, example input shape, and which input dims are symbolic (dim -> name)."""

    build: Callable[[], nn.Module]
    shape: tuple[int, ...]
    symbolic: tuple[tuple[int, str], ...] = ()


WILD = {"vit": Case(TinyViT, (1, 3, 32, 32)), "unet": Case(TinyUNet, (1, 3, 16, 16)),
        "audio": Case(AudioNet, (1, 1, 1600)),
        "detector": Case(TinyDetector, (1, 3, 32, 48), ((2, "height"), (3, "width")))}
SUPPORTED = {"cnn": Case(SmallCNN, (1, 3, 14, 14)), "resnet": Case(TinyResNet, (1, 3, 16, 16)),
             "conv1d": Case(ShortConv1d, (1, 4, 32))}


def build(case: Case) -> tuple[nn.Module, torch.Tensor]:
    """The model in eval mode, with fixed random weights, and a random example input."""
    torch.manual_seed(0)
    model = case.build().eval()
    return model, torch.randn(case.shape)


@functools.cache
def exported(name: str, exporter: str) -> onnx.ModelProto:
    """The ONNX export of case ``name`` (of WILD or SUPPORTED) with ``exporter`` (one of EXPORTERS); cached."""
    case = {**WILD, **SUPPORTED}[name]
    model, x = build(case)
    if exporter == "dynamo":
        return export_dynamo(model, x, case.symbolic)
    return export_torchscript(model, x, int(exporter.removeprefix("opset")), case.symbolic)


def export_torchscript(model: nn.Module, x: torch.Tensor, opset: int,
                       symbolic: tuple[tuple[int, str], ...] = ()) -> onnx.ModelProto:
    """The TorchScript exporter's ONNX model; ``symbolic`` input dims become named dynamic axes."""
    buffer = io.BytesIO()
    axes = {"x": dict(symbolic)} if symbolic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), buffer, dynamo=False, opset_version=opset, input_names=["x"],
                          dynamic_axes=axes)
    return onnx.load_from_string(buffer.getvalue())


def export_dynamo(model: nn.Module, x: torch.Tensor, symbolic: tuple[tuple[int, str], ...] = ()) -> onnx.ModelProto:
    """The dynamo (torch.export) exporter's ONNX model at its own opset; ``symbolic`` dims become export Dims."""
    shapes = {"x": {dim: torch.export.Dim(name, min=16) for dim, name in symbolic}} if symbolic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (x,), dynamo=True, dynamic_shapes=shapes, verbose=False)
    return program.model_proto
