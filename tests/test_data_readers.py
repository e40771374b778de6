"""Readers of the real on-disk formats: IDX (plain and gzip), CIFAR-10 python pickles, and their errors."""
from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from experiments.data import MissingDataError, load_task
from experiments.data.builtin import debian_package_files, fashion_folders, load_mnist
from experiments.data.cifar import TRAIN_BATCHES, load_cifar10, read_cifar_batch, safe_load_pickle
from experiments.data.idx import IDX_STEMS, parse_idx, read_idx, write_idx


def _idx_bytes(code: int, shape: tuple[int, ...], payload: bytes) -> bytes:
    return struct.pack(f">BBBB{len(shape)}I", 0, 0, code, len(shape), *shape) + payload


@pytest.mark.parametrize("dtype,code", [(np.uint8, 0x08), (np.int8, 0x09), (">i2", 0x0B), (">i4", 0x0C),
                                        (">f4", 0x0D), (">f8", 0x0E)])
def test_idx_header_and_dtypes_decoded_big_endian(dtype, code):
    values = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    got = parse_idx(_idx_bytes(code, (2, 3, 4), values.tobytes()))
    assert got.shape == (2, 3, 4)
    assert got.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(got, values.astype(np.dtype(dtype).newbyteorder("=")))


def test_idx_plain_and_gzip_files_read_identically(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    (tmp_path / "a").write_bytes(_idx_bytes(0x08, images.shape, images.tobytes()))
    (tmp_path / "b.gz").write_bytes(gzip.compress(_idx_bytes(0x08, images.shape, images.tobytes())))
    np.testing.assert_array_equal(read_idx(tmp_path / "a"), images)
    np.testing.assert_array_equal(read_idx(tmp_path / "b.gz"), images)


@pytest.mark.parametrize("data,message", [
    (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", "first two bytes"),
    (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00", "unknown IDX type byte 0x07"),
    (b"\x00\x00\x08\x00", "0 dimensions"),
    (b"\x00\x00\x08\x03" + struct.pack(">I", 2), "truncated header"),
    (_idx_bytes(0x08, (2, 3), bytes(5)), r"shape \(2, 3\).*6 bytes.*holds 5"),
    (_idx_bytes(0x0C, (2,), bytes(12)), r"8 bytes.*holds 12"),
])
def test_malformed_idx_rejected_with_reason(data, message):
    with pytest.raises(ValueError, match=message):
        parse_idx(data, "bad.idx")


def test_corrupt_gzip_rejected(tmp_path):
    blob = gzip.compress(_idx_bytes(0x08, (4,), bytes(4)))
    (tmp_path / "x.gz").write_bytes(blob[:-6])
    with pytest.raises(ValueError, match="corrupt gzip"):
        read_idx(tmp_path / "x.gz")


def _write_mnist(raw: Path, n_train: int, n_test: int, compress: bool, seed: int = 0) -> dict[str, np.ndarray]:
    raw.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    arrays = {"train_x": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "train_y": rng.integers(0, 10, n_train, dtype=np.uint8),
              "test_x": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "test_y": rng.integers(0, 10, n_test, dtype=np.uint8)}
    for key, array in arrays.items():
        write_idx(array, raw / (IDX_STEMS[key] + (".gz" if compress else "")), compress=compress)
    return arrays


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_torchvision_layout_loads(tmp_path, compress):
    arrays = _write_mnist(tmp_path / "MNIST" / "raw", 30, 7, compress)
    splits = load_mnist(tmp_path)
    np.testing.assert_array_equal(splits.train_x, arrays["train_x"])
    np.testing.assert_array_equal(splits.test_y, arrays["test_y"].astype(np.int64))
    task = load_task("mnist", tmp_path, val_fraction=0.2)
    assert (task.input_size, task.seq_len) == (1, 784)
    assert (len(task.train), len(task.val), len(task.test)) == (24, 6, 7)
    x, _ = task.test[0]
    np.testing.assert_allclose(x[:, 0].numpy(), arrays["test_x"][0].reshape(-1) / 255.0, rtol=1e-6)


def test_missing_mnist_names_every_expected_path(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    _write_mnist(raw, 4, 2, compress=False)
    (raw / IDX_STEMS["test_y"]).unlink()
    with pytest.raises(MissingDataError) as err:
        load_task("mnist", tmp_path)
    for stem in IDX_STEMS.values():
        assert str(raw / stem) in str(err.value) and str(raw / f"{stem}.gz") in str(err.value)
    assert isinstance(err.value, FileNotFoundError) and isinstance(err.value, ValueError)


def test_mnist_labels_count_mismatch_rejected(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    _write_mnist(raw, 4, 2, compress=False)
    write_idx(np.zeros(3, np.uint8), raw / IDX_STEMS["train_y"])
    with pytest.raises(ValueError, match="4 train images but 3 labels"):
        load_mnist(tmp_path)


def test_fashion_found_from_data_root_and_from_dpkg_list(tmp_path):
    arrays = _write_mnist(tmp_path / "FashionMNIST" / "raw", 6, 3, compress=True, seed=1)
    task = load_task("fashion", tmp_path, val_fraction=0.5)
    assert len(task.train) + len(task.val) == 6 and len(task.test) == 3
    np.testing.assert_allclose(task.test[2][0][:, 0].numpy() * 255, arrays["test_x"][2].reshape(-1), atol=1e-4)
    info = tmp_path / "info"
    info.mkdir()
    (info / "dataset-fashion-mnist.list").write_text("/.\n/opt/fm\n/opt/fm/train-images-idx3-ubyte.gz\n")
    assert debian_package_files("dataset-fashion-mnist", info)[-1] == Path("/opt/fm/train-images-idx3-ubyte.gz")
    assert fashion_folders(tmp_path) == [tmp_path / "FashionMNIST" / "raw", tmp_path]


def _py2_cifar_pickle(data: np.ndarray, labels: list[int]) -> bytes:
    """A protocol-2 pickle laid out as Python 2 wrote the CIFAR-10 batches: str (not bytes) keys and payload,
    arrays rebuilt by numpy.core.multiarray._reconstruct (read back with encoding='latin1')."""
    def s(text: str | bytes) -> bytes:
        raw = text.encode("latin1") if isinstance(text, str) else text
        return (b"U" + bytes([len(raw)]) if len(raw) < 256 else b"T" + struct.pack("<I", len(raw))) + raw

    def i(v: int) -> bytes:
        return b"J" + struct.pack("<i", v)

    dtype = (b"cnumpy\ndtype\n" + s("u1") + i(0) + i(1) + b"\x87R"
             + b"(" + i(3) + s("|") + b"NNN" + i(-1) + i(-1) + i(0) + b"tb")
    array = (b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n" + i(0) + b"\x85" + s("b") + b"\x87R"
             + b"(" + i(1) + i(data.shape[0]) + i(data.shape[1]) + b"\x86" + dtype + b"\x89" + s(data.tobytes()) + b"tb")
    items = s("batch_label") + s("training batch 1 of 5") + s("data") + array + s("labels") + b"]("
    items += b"".join(i(v) for v in labels) + b"e"
    return b"\x80\x02}(" + items + b"u."


def test_cifar_python2_latin1_batch_reads(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, (4, 3072), dtype=np.uint8)
    path = tmp_path / "batch"
    path.write_bytes(_py2_cifar_pickle(data, [3, 1, 4, 1]))
    images, labels = read_cifar_batch(path)
    assert images.shape == (4, 3, 32, 32) and images.dtype == np.uint8
    np.testing.assert_array_equal(images.reshape(4, -1), data)
    np.testing.assert_array_equal(labels, [3, 1, 4, 1])


def _write_cifar(root: Path, per_batch: int = 3) -> np.ndarray:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for name in (*TRAIN_BATCHES, "test_batch"):
        batch = {"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 "labels": rng.integers(0, 10, per_batch).tolist(), "batch_label": name}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    return batch["data"]


def test_cifar_layout_loads_and_encodes(tmp_path):
    test_data = _write_cifar(tmp_path)
    splits = load_cifar10(tmp_path)
    assert splits.train_x.shape == (15, 3, 32, 32) and splits.test_x.shape == (3, 3, 32, 32)
    np.testing.assert_array_equal(splits.test_x.reshape(3, -1), test_data)
    pixel = load_task("cifar10", tmp_path, val_fraction=0.2)
    assert (pixel.seq_len, pixel.input_size, tuple(pixel.test[0][0].shape)) == (1024, 3, (1024, 3))
    noisy = load_task("noisy-cifar10", tmp_path, val_fraction=0.2)
    assert (noisy.seq_len, noisy.input_size, tuple(noisy.test[0][0].shape)) == (1000, 96, (32, 96))


def test_missing_cifar_names_every_expected_path(tmp_path):
    with pytest.raises(MissingDataError) as err:
        load_cifar10(tmp_path)
    for name in (*TRAIN_BATCHES, "test_batch"):
        assert str(tmp_path / "cifar-10-batches-py" / name) in str(err.value)


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os
        return os.system, (f"touch {self.marker}",)


def test_malicious_pickle_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"data": _Exploit(marker), "labels": []}, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refusing to load global .*system"):
        safe_load_pickle(payload)
    (tmp_path / "data_batch_1").write_bytes(payload)
    with pytest.raises(ValueError, match="refusing"):
        read_cifar_batch(tmp_path / "data_batch_1")
    assert not marker.exists()
    eval_payload = b"\x80\x02cbuiltins\neval\nX\x0b\x00\x00\x00print('hi')\x85R."
    with pytest.raises(pickle.UnpicklingError, match="builtins.eval"):
        safe_load_pickle(eval_payload)


@pytest.mark.parametrize("batch,message", [
    ([1, 2], "expected a dict with keys 'data' and 'labels'"),
    ({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}, r"shape \(N, 3072\)"),
    ({"data": np.zeros((2, 3072), np.float32), "labels": [0, 1]}, "must be a uint8 array"),
    ({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}, "'labels' must be 2 integers"),
    ({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]}, "labels must lie in 0..9"),
])
def test_malformed_cifar_batch_rejected(tmp_path, batch, message):
    (tmp_path / "b").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(ValueError, match=message):
        read_cifar_batch(tmp_path / "b")


def test_truncated_cifar_pickle_rejected(tmp_path):
    (tmp_path / "b").write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1]})[:50])
    with pytest.raises(ValueError, match="not a readable CIFAR-10 batch"):
        read_cifar_batch(tmp_path / "b")


def test_tasks_needing_files_require_data_root(tmp_path):
    with pytest.raises(ValueError, match="pass --data-root"):
        load_task("pmnist")
    with pytest.raises(ValueError, match="is not a directory"):
        load_task("cifar10", tmp_path / "nowhere")
    with pytest.raises(ValueError, match="unknown task 'svhn'; known tasks: digits"):
        load_task("svhn")


def test_labels_outside_the_classes_rejected(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    _write_mnist(raw, 4, 2, compress=False)
    write_idx(np.array([0, 1, 12, 3], np.uint8), raw / IDX_STEMS["train_y"])
    with pytest.raises(ValueError, match=r"labels must lie in 0..9, found 0..12"):
        load_task("mnist", tmp_path)
