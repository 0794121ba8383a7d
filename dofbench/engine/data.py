"""Datasets in memory (:class:`DatasetInfo`, :class:`DataBundle`) and the shared preprocessing of
dataset plugins, as in the paper's code: inputs scaled to [0, 1], the
per-pixel mean of the training set subtracted from train and test, no augmentation; optional
stratified seeded subsampling of the training set and a fraction of shuffled labels (Li et al.'s
shuffled-label experiments).

A dataset plugin subclasses :class:`PreprocessParams` for its params and calls
:func:`preprocess` on its raw arrays; everything stays an in-memory tensor batched by index.
The order is: subsample (train and test) → shuffle labels → centre (the mean is that of the training examples
actually kept).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from pydantic import Field

from dofbench.config.identity import derive_seed
from dofbench.config.schemas import Params
from dofbench.engine.artifacts import default_cache_dir

ENV_DATA = "DOFBENCH_DATA"


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is, without loading it."""

    input_shape: tuple[int, ...]
    num_classes: int
    n_train: int
    n_test: int
    source: str
    task: str = "classification"


@dataclass
class DataBundle:
    """In-memory tensors of a dataset; batches are taken by index (no DataLoader)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    info: DatasetInfo
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None

    def to(self, device: torch.device | str) -> "DataBundle":
        return DataBundle(
            self.x_train.to(device), self.y_train.to(device),
            self.x_test.to(device), self.y_test.to(device), self.info, self.loss,
        )

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        if name == "train":
            return self.x_train, self.y_train
        if name == "test":
            return self.x_test, self.y_test
        raise KeyError(name)


class PreprocessParams(Params):
    """Preprocessing options every dataset plugin may offer (subclass and add your own)."""

    subsample: int | None = Field(
        None, gt=0, description="Keep N training examples, stratified by class (each class keeps its "
        "share, rounded) and drawn with `data_seed`; None = the whole training set.")
    test_subsample: int | None = Field(
        None, gt=0, description="Keep N test examples, stratified and drawn with `data_seed` (cheaper "
        "evaluations for quick suites); None = the whole test set.")
    random_labels: float = Field(
        0.0, ge=0, le=1, description="Fraction of training labels shuffled among themselves (Li et "
        "al.'s shuffled-label experiments); 0 = true labels, 1 = all labels permuted.")
    center: bool = Field(True, description="Subtract the per-pixel mean of the training set from train "
                         "and test inputs (the paper's preprocessing).")
    data_seed: int = Field(0, description="Seed of the subsample and the label shuffle (part of the "
                           "dataset's identity; independent of the trial seed).")


def default_data_root() -> Path:
    """Where on-disk datasets are looked for when neither params.root nor --data-root/$DOFBENCH_DATA
    is given, and where --download puts them: ``$DOFBENCH_CACHE/data`` (default ~/.cache/dofbench/data)."""
    return default_cache_dir() / "data"


def resolve_root(param_root: str | None, data_root: str | None) -> Path:
    """The data root: the dataset's ``root`` param, else --data-root / $DOFBENCH_DATA, else the default."""
    root = param_root or data_root or os.environ.get(ENV_DATA)
    return Path(root).expanduser() if root else default_data_root()


def generator(purpose: str, *key) -> np.random.Generator:
    return np.random.default_rng(derive_seed(purpose, *key))


def to_unit(x: np.ndarray, max_value: float = 255.0) -> np.ndarray:
    """Integer pixels → float32 in [0, 1]."""
    return np.asarray(x, dtype=np.float32) / np.float32(max_value)


def stratified_subsample(y: np.ndarray, n: int, seed: int, purpose: str = "subsample") -> np.ndarray:
    """Sorted indices of n examples: each class keeps its share of n (largest remainders get the
    rounding), chosen at random with (``purpose``, ``seed``, n). n ≥ len(y) keeps everything."""
    y = np.asarray(y)
    if n >= len(y):
        return np.arange(len(y))
    rng = generator(purpose, seed, n)
    classes, counts = np.unique(y, return_counts=True)
    exact = counts * n / len(y)
    take = np.floor(exact).astype(int)
    rest = n - take.sum()
    order = np.argsort(-(exact - take), kind="stable")
    take[order[:rest]] += 1
    picked = [rng.choice(np.flatnonzero(y == c), size=k, replace=False) for c, k in zip(classes, take)]
    return np.sort(np.concatenate(picked))


def shuffle_labels(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A copy of y where a random ``fraction`` of the entries are permuted among themselves."""
    y = np.array(y, copy=True)
    k = int(round(fraction * len(y)))
    if k < 2:
        return y
    rng = generator("random-labels", seed, fraction)
    idx = rng.choice(len(y), size=k, replace=False)
    y[idx] = y[rng.permutation(idx)]
    return y


def preprocess(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
               p: PreprocessParams, info: DatasetInfo, *, scale: float | None = 255.0) -> DataBundle:
    """Raw arrays → a :class:`DataBundle` of float32 inputs and int64 labels.

    ``scale`` divides the inputs (255 for 8-bit pixels; None if already in [0, 1] or not images).
    Inputs are reshaped to ``info.input_shape``; the bundle's info carries the actual sizes.
    """
    y_train = np.asarray(y_train).astype(np.int64)
    if p.subsample is not None:
        keep = stratified_subsample(y_train, p.subsample, p.data_seed)
        x_train, y_train = x_train[keep], y_train[keep]
    y_test = np.asarray(y_test).astype(np.int64)
    if p.test_subsample is not None:
        keep = stratified_subsample(y_test, p.test_subsample, p.data_seed, "test-subsample")
        x_test, y_test = x_test[keep], y_test[keep]
    if p.random_labels > 0:
        y_train = shuffle_labels(y_train, p.random_labels, p.data_seed)
    xt = to_unit(x_train, scale) if scale else np.asarray(x_train, dtype=np.float32)
    xs = to_unit(x_test, scale) if scale else np.asarray(x_test, dtype=np.float32)
    xt = xt.reshape(len(xt), *info.input_shape)
    xs = xs.reshape(len(xs), *info.input_shape)
    if p.center:
        mean = xt.mean(axis=0, keepdims=True, dtype=np.float64).astype(np.float32)
        xt, xs = xt - mean, xs - mean
    info = dataclasses.replace(info, n_train=len(y_train), n_test=len(xs))
    return DataBundle(torch.from_numpy(np.ascontiguousarray(xt)), torch.from_numpy(y_train),
                      torch.from_numpy(np.ascontiguousarray(xs)),
                      torch.from_numpy(y_test), info)


def n_train_after(n_train: int, p: PreprocessParams) -> int:
    """Training-set size after the subsample option."""
    return min(n_train, p.subsample) if p.subsample is not None else n_train


def n_test_after(n_test: int, p: PreprocessParams) -> int:
    """Test-set size after the test_subsample option."""
    return min(n_test, p.test_subsample) if p.test_subsample is not None else n_test
