"""Vision models of Larsen et al. (2022) and Li et al. (2018): Conv-n, LeNet-5, FC, ResNet-20,
and any timm model by name.

Every model takes image inputs shaped (C, H, W) as the image datasets deliver them (FC flattens
any input). Conv-n and ResNet-20 follow the paper's released JAX code (Flax defaults:
LeCun-normal kernels, zero biases; BatchNorm momentum 0.9 in Flax's convention = 0.1 in
PyTorch's, ε = 1e-5). BatchNorm running statistics are buffers, not parameters: they are not in
D and the shared trainer handles them (see :class:`dofbench.plugin.FlatNet`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import torch
from pydantic import Field
from torch import nn

from dofbench.plugin import DatasetInfo, DofbenchError, Model, Params, hookimpl
from dofbench_plugins.models import LECUN_HELP, MLP, PAPER_CODE_INIT, MLPParams, init_lecun_

Width = Annotated[int, Field(gt=0)]


def _image_shape(info: DatasetInfo, model: str) -> tuple[int, int, int]:
    if len(info.input_shape) != 3:
        raise DofbenchError(
            f"model {model!r} needs image inputs shaped (channels, height, width); this dataset's "
            f"input shape is {tuple(info.input_shape)} (use an image dataset, or the mlp/fc models)")
    c, h, w = info.input_shape
    return int(c), int(h), int(w)


def _spatial_after(size: int, n_halvings: int, model: str, what: str) -> int:
    for _ in range(n_halvings):
        size //= 2
    if size < 1:
        raise DofbenchError(f"model {model!r}: the input is too small for {what} (it shrinks to 0 pixels)")
    return size


# --------------------------------------------------------------------------------------- layout
Layout = Literal["auto", "contiguous", "channels-last"]


def layout_field(auto: str) -> Any:
    return Field(
        "auto", description=f"Memory layout of the image inputs: 'auto' = {auto}; 'contiguous' = as "
        "delivered (N, C, H, W); 'channels-last' = channels-last strides on every device (on the CPU "
        "oneDNN's convolutions and pooling run 1.2–1.6× faster on them: Conv-2, Conv-3, LeNet-5, "
        "ResNet-20, measured with `python -m perf anchor`). The same values: only the order of float "
        "sums depends on it, so it is not part of the trial id.", json_schema_extra={"identity": False})


AUTO_CHANNELS_LAST = "channels-last strides on the CPU, as the dataset delivers them elsewhere"


def input_layout(layout: str, device: str, auto_on_cpu: bool = True) -> str | None:
    """:meth:`Model.input_layout` of a model with a ``layout`` param."""
    if layout == "auto":
        return "channels_last" if auto_on_cpu and device == "cpu" else None
    return "channels_last" if layout == "channels-last" else None


LecunInit = Literal["lecun-normal", "lecun-truncated-normal"]


def init_field():
    return Field("lecun-normal", description=f"Initialisation of kernels and biases: {LECUN_HELP}.")


class _LaidOut(Model):
    """A vision model with ``layout`` and ``init`` params; ``auto_channels_last``: whether layout
    'auto' means channels-last on the CPU."""

    presets = PAPER_CODE_INIT
    auto_channels_last = True

    def input_layout(self, params, device: str) -> str | None:
        return input_layout(params.layout, device, self.auto_channels_last)


# --------------------------------------------------------------------------------------- Conv-n
class ConvParams(Params):
    channels: list[Width] = Field(
        [16, 32], min_length=1,
        description="Channels of each 3×3 conv (same padding, bias) → ReLU → 2×2 average pool stage; "
        "[16, 32] = Conv-2, [32, 64, 64] = Conv-3 (the paper's SimpleCNN).")
    pool: Literal["avg", "max"] = Field("avg", description="2×2 pooling after each conv (paper: avg).")
    init: LecunInit = init_field()
    layout: Layout = layout_field(AUTO_CHANNELS_LAST)


class ConvNet(_LaidOut):
    name = "conv"
    description = ("Conv-n (Larsen et al.'s SimpleCNN): per channel count 3×3 conv → ReLU → 2×2 avg "
                   "pool, then one linear layer; LeCun-normal kernels, zero biases.")
    Params = ConvParams

    def build(self, params: ConvParams, info: DatasetInfo) -> nn.Module:
        c, h, w = _image_shape(info, self.name)
        n = len(params.channels)
        hh = _spatial_after(h, n, self.name, f"{n} pooling stages")
        ww = _spatial_after(w, n, self.name, f"{n} pooling stages")
        pool = nn.AvgPool2d if params.pool == "avg" else nn.MaxPool2d
        layers: list[nn.Module] = []
        for out in params.channels:
            layers += [nn.Conv2d(c, out, 3, padding=1), nn.ReLU(), pool(2, 2)]
            c = out
        layers += [nn.Flatten(), nn.Linear(c * hh * ww, info.num_classes)]
        return init_lecun_(nn.Sequential(*layers), params.init)


# --------------------------------------------------------------------------------------- LeNet-5
class LeNetParams(Params):
    filters: list[Width] = Field([6, 16], min_length=2, max_length=2,
                               description="Filters of the two 5×5 valid convs (Li et al.: 6, 16).")
    dense: list[Width] = Field([120, 84], description="Hidden dense widths after the convs (Li et al.: 120, 84).")
    pool: Literal["max", "avg"] = Field("max", description="2×2 pooling after each conv (Li et al.: max).")
    init: LecunInit = init_field()
    layout: Layout = layout_field(AUTO_CHANNELS_LAST)


class LeNet5(_LaidOut):
    name = "lenet5"
    description = "LeNet-5 as in Li et al. (2018): conv 6@5×5 → pool → conv 16@5×5 → pool → 120 → 84 → classes."
    Params = LeNetParams

    def build(self, params: LeNetParams, info: DatasetInfo) -> nn.Module:
        c, h, w = _image_shape(info, self.name)
        pool = nn.MaxPool2d if params.pool == "max" else nn.AvgPool2d
        for _ in range(2):
            h, w = (h - 4) // 2, (w - 4) // 2
        if h < 1 or w < 1:
            raise DofbenchError(f"model {self.name!r} needs inputs of at least 16×16 pixels, got {info.input_shape}")
        f1, f2 = params.filters
        layers: list[nn.Module] = [nn.Conv2d(c, f1, 5), nn.ReLU(), pool(2, 2),
                                   nn.Conv2d(f1, f2, 5), nn.ReLU(), pool(2, 2), nn.Flatten()]
        width = f2 * h * w
        for hidden in params.dense:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, info.num_classes))
        return init_lecun_(nn.Sequential(*layers), params.init)


# --------------------------------------------------------------------------------------- FC
class FCParams(MLPParams):
    hidden: list[Width] = Field([200, 200], description="Hidden widths (Li et al.'s FC: 784–200–200–10).")


class FC(MLP):
    name = "fc"
    description = "Li et al.'s fully connected network: flatten → hidden ReLU layers (default 200, 200) → classes."
    Params = FCParams


# --------------------------------------------------------------------------------------- ResNet-20
class ResNetParams(Params):
    depth: int = Field(20, ge=8, description="Depth 6n+2 (20 = ResNet-20: three stages of three basic blocks).")
    width: int = Field(16, ge=1, description="Filters of the first stage; the stages have width, 2·width, 4·width.")
    shortcut: Literal["projection", "identity"] = Field(
        "projection", description="Shortcut where the shape changes: 'projection' = 1×1 conv + BatchNorm "
        "(the paper's Keras-style ResNet20v1, D = 272,474 on CIFAR-10); 'identity' = He et al.'s option A "
        "(strided identity, zero-padded channels, no parameters).")
    bn_momentum: float = Field(0.1, gt=0, le=1, description="BatchNorm running-average momentum in PyTorch's "
                               "convention (0.1 = Flax's 0.9, as in the paper's code).")
    bn_eps: float = Field(1e-5, gt=0, description="BatchNorm ε (paper's code: 1e-5).")
    init: LecunInit = init_field()
    layout: Layout = layout_field("as the dataset delivers them (torch 2.14's CPU kernels corrupted "
                                  "the heap on a width-4 ResNet-8 with channels-last inputs in one thread)")


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, p: ResNetParams):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout, eps=p.bn_eps, momentum=p.bn_momentum)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=p.bn_eps, momentum=p.bn_momentum)
        self.pad = 0
        self.stride = stride
        self.proj: nn.Module | None = None
        if stride != 1 or cin != cout:
            if p.shortcut == "projection":
                self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout, eps=p.bn_eps, momentum=p.bn_momentum))
            else:
                self.pad = cout - cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        if self.proj is not None:
            x = self.proj(x)
        elif self.stride != 1 or self.pad:
            x = nn.functional.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, 0, self.pad))
        return torch.relu(x + y)


class ResNet20(_LaidOut):
    name = "resnet20"
    # 'auto' keeps NCHW: with channels-last inputs in one thread, the width-4 ResNet-8 of
    # tests/plugins/test_models.py aborted in backward (free(): invalid next size / bad_alloc, torch
    # 2.14.1, CPU); widths 8 and 16 did not. 'channels-last' still asks for it explicitly.
    auto_channels_last = False
    description = ("ResNet-20 for CIFAR (He et al. v1): 3×3/16 stem, three stages of three basic blocks "
                   "(16/32/64), BatchNorm, global average pool, linear head.")
    Params = ResNetParams

    def build(self, params: ResNetParams, info: DatasetInfo) -> nn.Module:
        c, h, w = _image_shape(info, self.name)
        if (params.depth - 2) % 6:
            raise DofbenchError(f"model {self.name!r}: params.depth must be 6n+2 (20, 32, 44, …), got {params.depth}")
        blocks = (params.depth - 2) // 6
        p = params
        layers: list[nn.Module] = [nn.Conv2d(c, p.width, 3, 1, 1, bias=False),
                                   nn.BatchNorm2d(p.width, eps=p.bn_eps, momentum=p.bn_momentum), nn.ReLU()]
        cin = p.width
        for stage in range(3):
            cout = p.width * 2**stage
            for b in range(blocks):
                layers.append(_Block(cin, cout, 2 if stage > 0 and b == 0 else 1, p))
                cin = cout
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, info.num_classes)]
        return init_lecun_(nn.Sequential(*layers), params.init)


# --------------------------------------------------------------------------------------- timm
class TimmParams(Params):
    arch: str = Field("resnet18", description="A timm architecture name (`timm.list_models()`), e.g. 'resnet18'. "
                      "Built with random weights (never pretrained: nothing is downloaded), with the "
                      "dataset's input channels and classes.")
    kwargs: dict[str, int | float | str | bool] = Field(
        default_factory=dict, description="Extra keyword arguments for timm.create_model (e.g. drop_rate).")


class TimmModel(Model):
    name = "timm"
    description = "Any timm model by name, randomly initialised (offline), adapted to the dataset's channels and classes."
    Params = TimmParams

    def build(self, params: TimmParams, info: DatasetInfo) -> nn.Module:
        try:
            import timm
        except ImportError:  # pragma: no cover - timm is in the vision extra
            raise DofbenchError("model 'timm' needs the timm package: pip install 'dofbench[vision]'") from None
        c, _, _ = _image_shape(info, self.name)
        if not timm.is_model(params.arch):
            raise DofbenchError(f"model 'timm': params.arch {params.arch!r} is not a timm architecture "
                                f"(see timm.list_models())")
        return timm.create_model(params.arch, pretrained=False, num_classes=info.num_classes,
                                 in_chans=c, **params.kwargs)


@hookimpl
def dofbench_models():
    return [ConvNet(), LeNet5(), FC(), ResNet20(), TimmModel()]
