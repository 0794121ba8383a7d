"""Built-in models: the MLP (fully connected network on flattened inputs)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field
from torch import nn

from dofbench.plugin import DatasetInfo, Model, Params, hookimpl, lecun_normal_


def init_lecun_(module: nn.Module) -> nn.Module:
    """LeCun-normal weights, zero biases on every Linear and Conv (Flax's defaults, as in the
    paper's released JAX code)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            lecun_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


class MLPParams(Params):
    hidden: list[int] = Field([100, 100], description="Widths of the hidden layers (may be empty).")
    activation: Literal["relu", "tanh"] = Field("relu", description="Hidden activation.")
    init: Literal["lecun-normal", "torch-default"] = Field(
        "lecun-normal", description="Initialisation: LeCun-normal weights and zero biases (as the "
        "paper's JAX code), or PyTorch's defaults.")


class MLP(Model):
    name = "mlp"
    description = "Fully connected network on flattened inputs: Linear → act → … → Linear."
    Params = MLPParams

    def build(self, params: MLPParams, info: DatasetInfo) -> nn.Module:
        widths = [math.prod(info.input_shape), *params.hidden, info.num_classes]
        act = nn.ReLU if params.activation == "relu" else nn.Tanh
        layers: list[nn.Module] = [nn.Flatten()]
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(widths) - 2:
                layers.append(act())
        net = nn.Sequential(*layers)
        return init_lecun_(net) if params.init == "lecun-normal" else net

    def batchable(self, params: MLPParams) -> bool:
        return True


@hookimpl
def dofbench_models():
    return [MLP()]
