"""Built-in models: the MLP (fully connected network on flattened inputs)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field
from torch import nn

from dofbench.plugin import DatasetInfo, Model, Params, hookimpl, lecun_normal_, lecun_truncated_normal_


def init_lecun_(module: nn.Module, init: str = "lecun-normal") -> nn.Module:
    """LeCun-normal weights, zero biases on every Linear and Conv (Flax's defaults, as in the
    paper's released JAX code): N(0, 1/fan_in) untruncated ('lecun-normal', dofbench's default),
    or Flax's own truncated form ('lecun-truncated-normal')."""
    draw = lecun_truncated_normal_ if init == "lecun-truncated-normal" else lecun_normal_
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            draw(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


LECUN_HELP = ("'lecun-normal' = N(0, 1/fan_in) weights (untruncated), zero biases; "
              "'lecun-truncated-normal' = Flax's lecun_normal() of the paper's released code: "
              "variance_scaling(1, 'fan_in', 'truncated_normal'), N(0, 1) truncated to [−2, 2] times "
              "sqrt(1/fan_in)/0.87962566, zero biases")
PAPER_CODE_INIT = {"paper-code": {"init": "lecun-truncated-normal"}}


class MLPParams(Params):
    hidden: list[int] = Field([100, 100], description="Widths of the hidden layers (may be empty).")
    activation: Literal["relu", "tanh"] = Field("relu", description="Hidden activation.")
    init: Literal["lecun-normal", "lecun-truncated-normal", "torch-default"] = Field(
        "lecun-normal", description=f"Initialisation: {LECUN_HELP}; 'torch-default' = PyTorch's defaults.")


class MLP(Model):
    name = "mlp"
    description = "Fully connected network on flattened inputs: Linear → act → … → Linear."
    Params = MLPParams
    presets = PAPER_CODE_INIT

    def build(self, params: MLPParams, info: DatasetInfo) -> nn.Module:
        widths = [math.prod(info.input_shape), *params.hidden, info.num_classes]
        act = nn.ReLU if params.activation == "relu" else nn.Tanh
        layers: list[nn.Module] = [nn.Flatten()]
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(widths) - 2:
                layers.append(act())
        net = nn.Sequential(*layers)
        return net if params.init == "torch-default" else init_lecun_(net, params.init)

    def batchable(self, params: MLPParams) -> bool:
        return True


@hookimpl
def dofbench_models():
    return [MLP()]
