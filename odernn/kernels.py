"""Which implementation runs the fused scans' time loops: the compiled walks or the Python ones.

The fused scans (``odernn.fused``) spend most of their time in per-step overhead when the loop runs in
Python (several small operations launched per step, forward and backward). ``csrc/fused_walks.cpp`` (the
tanh-form scans) and ``csrc/family_walks.cpp`` (coRNN, LEM, Lipschitz RNN) hold the same walks with the loop
in C++ (``csrc/walk_support.h``: what they share), each step calling ATen's matrix product and elementwise kernels
directly; it is compiled with ``torch.utils.cpp_extension`` on first use and cached (in
``TORCH_EXTENSIONS_DIR``, by default ``~/.cache/torch_extensions``), so later processes only load it: beside
the library a stamp holds the hash of what it was built from (source, flags, torch and Python versions) and
the library file's size and modification time; when both match, the library is loaded directly, without the
loader's ~0.4 s up-to-date check.
``scripts/setup-env.sh`` builds it once at install time (:func:`main`).

The choice is made once per process, here: ``ODERNN_SCAN_KERNEL`` = ``auto`` (default: compiled where it
builds, else Python with a one-line notice on stderr), ``compiled`` (an error if it cannot be built) or
``python``. :func:`use` switches it for a block (tests compare both paths). The compiled walks serve CPU
tensors; other devices run the Python walks, which are device-agnostic.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from pathlib import Path
from typing import Iterator, Optional

import torch

ENV = "ODERNN_SCAN_KERNEL"
CHOICES = ("auto", "compiled", "python")
CSRC = Path(__file__).with_name("csrc")
SOURCES = (CSRC / "fused_walks.cpp", CSRC / "family_walks.cpp")
HEADERS = (CSRC / "walk_support.h", CSRC / "fixed_product.h")
NAME = "odernn_fused_walks"

_state: dict = {"choice": None, "ops": None, "error": None, "noticed": False}


def _choice() -> str:
    if _state["choice"] is None:
        choice = os.environ.get(ENV, "auto").strip().lower() or "auto"
        if choice not in CHOICES:
            raise ValueError(f"{ENV} must be one of {', '.join(CHOICES)}, got {choice!r}")
        _state["choice"] = choice
    return _state["choice"]


def build(verbose: bool = False):
    """Compile (or load from the cache) the walks and return ``torch.ops.odernn_fused``; raises on failure."""
    if _state["ops"] is None:
        from torch.utils.cpp_extension import _get_build_directory, load
        cflags, ldflags = ["-O3", *vector_flags(), *parallel_flags()], parallel_flags()
        folder = Path(_get_build_directory(NAME, verbose))
        library, stamp = folder / f"{NAME}.so", folder / "odernn-stamp"
        recipe = hashlib.sha256(_recipe_text(cflags, ldflags).encode()).hexdigest()
        if library.is_file() and stamp.is_file() and stamp.read_text() == _stamp(recipe, library):
            torch.ops.load_library(str(library))
        else:
            load(name=NAME, sources=[str(path) for path in SOURCES], extra_cflags=cflags, extra_ldflags=ldflags,
                 is_python_module=False, verbose=verbose)
            if hashlib.sha256(_recipe_text(cflags, ldflags).encode()).hexdigest() == recipe:  # source unchanged
                temporary = stamp.with_name(f"{stamp.name}.{os.getpid()}.tmp")
                temporary.write_text(_stamp(recipe, library))
                os.replace(temporary, stamp)
        _state["ops"] = torch.ops.odernn_fused
    return _state["ops"]


def _recipe_text(cflags: list[str], ldflags: list[str]) -> str:
    texts = [path.read_text() for path in (*SOURCES, *HEADERS)]
    return "\0".join([*texts, *cflags, "|", *ldflags, torch.__version__, sys.version])


def _stamp(recipe: str, library: Path) -> str:
    """The recipe's hash tied to the library file it describes (its size and modification time): a library
    rebuilt by anything else (another checkout's loader) no longer matches, and is rebuilt by the loader."""
    if not library.is_file():
        return ""
    info = library.stat()
    return f"{recipe} {info.st_size} {info.st_mtime_ns}"


def vector_flags() -> list[str]:
    """Compiler flags for ATen's vector types at the CPU capability torch itself runs (AVX-512 or AVX2 with
    FMA), so the elementwise passes use 16 or 8 floats per instruction; the portable scalar form elsewhere.
    torch's loader rebuilds when the flags change, so a cached build never runs under flags it was not
    made with."""
    capability = torch.backends.cpu.get_cpu_capability()
    if capability == "AVX512":
        return ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma", "-DCPU_CAPABILITY=AVX512",
                "-DCPU_CAPABILITY_AVX512"]
    if capability == "AVX2":
        return ["-mavx2", "-mfma", "-DCPU_CAPABILITY=AVX2", "-DCPU_CAPABILITY_AVX2"]
    return []


def parallel_flags() -> list[str]:
    """``-fopenmp`` where ATen's parallel backend is OpenMP: its ``at::parallel_for`` is a header template
    whose pragma is otherwise compiled away (the walks' bands would then run one after the other). The
    extension links ``libgomp.so.1`` by soname, so the process keeps torch's one OpenMP runtime."""
    return ["-fopenmp"] if "ATen parallel backend: OpenMP" in torch.__config__.parallel_info() else []


def compiled_ops() -> Optional[object]:
    """The compiled walks if the current choice allows them and they build, else None (``auto`` prints a
    one-line notice the first time they fail to build; ``compiled`` raises)."""
    choice = _choice()
    if choice == "python":
        return None
    if _state["ops"] is None and _state["error"] is None:
        try:
            build()
        except Exception as error:  # no compiler, no ninja, a failed build: the Python walks still work
            _state["error"] = f"{type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error).strip() else ''}"
    if _state["ops"] is None:
        if choice == "compiled":
            raise RuntimeError(f"{ENV}=compiled but the compiled scan could not be built ({_state['error']})")
        if not _state["noticed"]:
            _state["noticed"] = True
            print(f"odernn: compiled scan unavailable ({_state['error']}); using the Python scan "
                  f"(slower; set {ENV}=python to silence)", file=sys.stderr)
    return _state["ops"]


def active(device: torch.device) -> str:
    """``"compiled"`` or ``"python"``: what a fused scan on ``device`` runs now."""
    return "compiled" if device.type == "cpu" and compiled_ops() is not None else "python"


@contextlib.contextmanager
def use(choice: str) -> Iterator[None]:
    """Run the block with ``choice`` (one of :data:`CHOICES`) instead of the environment's."""
    if choice not in CHOICES:
        raise ValueError(f"choice must be one of {', '.join(CHOICES)}, got {choice!r}")
    saved = _choice()
    _state["choice"] = choice
    try:
        yield
    finally:
        _state["choice"] = saved


def main() -> int:
    """``python -m odernn.kernels``: build the compiled walks now (install time) and say where they are."""
    try:
        build(verbose="-v" in sys.argv[1:])
    except Exception as error:
        print(f"odernn: compiled scan could not be built ({type(error).__name__}); the Python scan will be used",
              file=sys.stderr)
        return 0
    print(f"odernn: compiled scan ready ({NAME})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
