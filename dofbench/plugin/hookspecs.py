"""The hook specifications of dofbench: the whole plugin surface.

Every component hook is *collect-all*: each plugin that implements it returns a list (or any
iterable) of component objects, and the host gathers all of them. The host calls each plugin's
implementation on its own, so a plugin whose hook raises is reported and skipped while the rest
keep working. Component names are global per kind: two plugins registering the same name is an
error naming both.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("dofbench")
hookimpl = pluggy.HookimplMarker("dofbench")


@hookspec
def dofbench_models():
    """Return the models this plugin provides: a list of :class:`dofbench.plugin.Model`.

    Collect-all. A model builds a ``torch.nn.Module`` for a dataset's input shape and class count.
    """


@hookspec
def dofbench_datasets():
    """Return the datasets this plugin provides: a list of :class:`dofbench.plugin.Dataset`.

    Collect-all. A dataset loads in-memory tensors (train and test split) and can describe its
    shapes without loading them.
    """


@hookspec
def dofbench_methods():
    """Return the DOF-reduction methods this plugin provides: a list of
    :class:`dofbench.plugin.Method`.

    Collect-all. A method maps a trained vector φ ∈ R^d to the full parameters θ (a
    reparametrisation), or takes over training entirely.
    """


@hookspec
def dofbench_metrics():
    """Return the evaluation metrics this plugin provides: a list of
    :class:`dofbench.plugin.Metric`.

    Collect-all. Every metric is evaluated on the full train and test sets at each evaluation
    point; its final and best values are stored with the trial and can define success.
    """


@hookspec
def dofbench_executors():
    """Return the executors this plugin provides: a list of
    :class:`dofbench.plugin.ExecutorFactory`.

    Collect-all. An executor runs trial groups (``concurrent.futures``-shaped) for the runner.
    """


@hookspec
def dofbench_commands(cli):
    """Add commands to the ``dofbench`` click group ``cli``; return nothing.

    Called once per CLI invocation with the root group.
    """
