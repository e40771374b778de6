"""IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed.

Layout (LeCun et al.): two zero bytes, a type byte, a byte with the number of dimensions d, then d
big-endian uint32 sizes, then the values in C order, big-endian. Type bytes: 0x08 uint8, 0x09 int8,
0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64. Everything is checked: a file whose header or length
does not match raises ``ValueError`` saying what was found and what was expected.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from experiments.data.splits import ArraySplits, missing_files_error
from experiments.io import atomic_path

IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
GZIP_MAGIC = b"\x1f\x8b"
# File stems of the MNIST family (MNIST, Fashion-MNIST, ...), as torchvision stores them under raw/.
IDX_STEMS: dict[str, str] = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: corrupt gzip stream ({exc})") from exc


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode the bytes of one IDX file into a native-endian array of the stored dtype and shape."""
    if len(data) < 4 or data[:2] != b"\x00\x00":
        raise ValueError(f"{name}: not an IDX file (the first two bytes must be 0x00 0x00, got {data[:2]!r})")
    type_code, ndim = data[2], data[3]
    if type_code not in IDX_TYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_TYPES)
        raise ValueError(f"{name}: unknown IDX type byte 0x{type_code:02X}; known: {known}")
    if ndim == 0:
        raise ValueError(f"{name}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{name}: truncated header ({len(data)} bytes, {header} needed for {ndim} dimensions)")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = IDX_TYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(
            f"{name}: header declares shape {shape} of {dtype.name} ({expected} bytes of data) "
            f"but the file holds {len(data) - header} bytes after the header"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (gzip detected from its magic bytes, whatever the name)."""
    path = Path(path)
    return parse_idx(_read_bytes(path), str(path))


def find_idx_files(folders: list[Path]) -> dict[str, Path] | None:
    """The four MNIST-family files in the first folder holding all of them (``stem`` or ``stem.gz``)."""
    for folder in folders:
        found = {}
        for key, stem in IDX_STEMS.items():
            hits = [p for p in (folder / stem, folder / f"{stem}.gz") if p.is_file()]
            if hits:
                found[key] = hits[0]
        if len(found) == len(IDX_STEMS):
            return found
    return None


def expected_idx_paths(folders: list[Path]) -> list[str]:
    """Every path :func:`find_idx_files` looks at, for error messages."""
    return [str(folder / f"{stem}{ext}") for folder in folders for stem in IDX_STEMS.values() for ext in ("", ".gz")]


def _check_pair(images: np.ndarray, labels: np.ndarray, part: str, where: str) -> None:
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{where}: {part} images must be a 3-d uint8 array (N, rows, cols), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise ValueError(f"{where}: {part} labels must be a 1-d uint8 array, got {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{where}: {len(images)} {part} images but {len(labels)} labels")


def _check_geometry(arrays: dict[str, np.ndarray], what: str, where: str,
                    image_shape: tuple[int, int] | None) -> None:
    train, test = tuple(arrays["train_x"].shape[1:]), tuple(arrays["test_x"].shape[1:])
    expected = f"{what} images are {image_shape[0]}x{image_shape[1]}" if image_shape else "both must be the same"
    if train != test:
        raise ValueError(f"{where}: train images are {train[0]}x{train[1]} but test images are {test[0]}x{test[1]}; "
                         f"{expected}")
    if image_shape is not None and train != tuple(image_shape):
        raise ValueError(f"{where}: images are {train[0]}x{train[1]}; {expected}")


def load_idx_folder(folders: list[Path], what: str, hint: str = "",
                    image_shape: tuple[int, int] | None = None) -> ArraySplits:
    """Load train/test images and labels from the first of ``folders`` that holds all four IDX files.

    Raises :class:`~experiments.data.splits.MissingDataError` naming every expected path when none does, and
    ValueError when the train and test images differ in size or (``image_shape``) are not rows x cols.
    """
    files = find_idx_files(folders)
    if files is None:
        raise missing_files_error(what, expected_idx_paths(folders), hint)
    arrays = {key: read_idx(path) for key, path in files.items()}
    where = str(files["train_x"].parent)
    for part in ("train", "test"):
        _check_pair(arrays[f"{part}_x"], arrays[f"{part}_y"], part, where)
    _check_geometry(arrays, what, where, image_shape)
    return ArraySplits(**{k: v.astype(np.int64) if k.endswith("_y") else v for k, v in arrays.items()}, source=where)


def write_idx(array: np.ndarray, path: str | os.PathLike, compress: bool = False) -> None:
    """Write ``array`` as an IDX file (the inverse of :func:`read_idx`; used by tests and data tools)."""
    codes = {dt.newbyteorder("=").str: code for code, dt in IDX_TYPES.items()}
    key = array.dtype.newbyteorder("=").str
    if key not in codes:
        raise ValueError(f"dtype {array.dtype} has no IDX type; allowed: {[d.name for d in IDX_TYPES.values()]}")
    code = codes[key]
    body = struct.pack(f">BBBB{array.ndim}I", 0, 0, code, array.ndim, *array.shape)
    body += np.ascontiguousarray(array, dtype=IDX_TYPES[code]).tobytes()
    with atomic_path(path) as tmp:
        tmp.write_bytes(gzip.compress(body) if compress else body)
