"""Built-in metrics: cross-entropy loss (the task's training loss) and accuracy."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dofbench.plugin import FunctionMetric, hookimpl


def _loss_sum(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(outputs, targets, reduction="sum")


def _correct(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return (outputs.argmax(dim=-1) == targets).sum()


def _correct_stacked(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Correct predictions of each of K networks: outputs (K, n, classes), targets (n,) → (K,)."""
    return (outputs.argmax(dim=-1) == targets).sum(dim=-1)


@hookimpl
def dofbench_metrics():
    return [
        FunctionMetric(name="loss", fn=_loss_sum, higher_is_better=False,
                       description="Mean training loss of the task (cross-entropy for classification).",
                       tasks=("classification", "regression", "quadratic"), task_loss=True,
                       range=(0.0, float("inf"))),
        FunctionMetric(name="acc", fn=_correct, higher_is_better=True,
                       description="Top-1 accuracy.", stacked_fn=_correct_stacked, range=(0.0, 1.0)),
    ]
