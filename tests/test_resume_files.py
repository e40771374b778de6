"""A resumed run whose files are broken is refused before anything is trained or written: a corrupt,
truncated, empty or foreign best.pt, a checkpoint missing a key or with a wrong-typed RNG state. Every byte of
the folder stays as it was."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from experiments.__main__ import main

SEQ = ["sequential", "--task", "digits", "--model", "antisymmetric", "--hidden-size", "4", "--batch-size", "64",
       "--train-subset", "200", "--test-subset", "20", "--threads", "1", "--no-progress", "--stability-check", "off"]


def hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("resume") / "run"
    threads = torch.get_num_threads()
    assert main([*SEQ, "--epochs", "1", "--out-dir", str(out)]) == 0
    torch.set_num_threads(threads)
    return out


def broken_copy(finished: Path, tmp_path: Path, name: str, content) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    for path in finished.iterdir():
        (run / path.name).write_bytes(path.read_bytes())
    target = run / name
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        torch.save(content(torch.load(target, weights_only=True)), target)
    return run


@pytest.mark.parametrize("name,content,message", [
    ("best.pt", b"", "best.pt is not a readable odernn checkpoint"),
    ("best.pt", b"PK\x03\x04 truncated", "best.pt is not a readable odernn checkpoint"),
    ("best.pt", lambda best: {"weight": torch.zeros(3)}, "best.pt does not hold this model's weights"),
    ("best.pt", lambda best: {k: v[..., :1] for k, v in best.items()}, "other names or shapes"),
    ("checkpoint.pt", lambda state: {k: v for k, v in state.items() if k != "optimizer"}, "missing optimizer"),
    ("checkpoint.pt", lambda state: {**state, "torch_rng": [1, 2, 3]}, "RNG state is not a byte tensor"),
])
def test_broken_files_are_refused_before_anything_is_written(finished, tmp_path, capsys, name, content, message):
    run = broken_copy(finished, tmp_path, name, content)
    before = hashes(run)
    assert main([*SEQ, "--epochs", "2", "--out-dir", str(run), "--resume"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert hashes(run) == before
