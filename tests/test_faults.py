"""The fault-injection suite's quick groups (experiments/faults.py), one test per case: corrupted and foreign
files of sequential and trajectory run folders, flags at their boundaries, non-finite values mid-solve and
empty data each end in a one-line refusal that leaves every file as it was, or in the expected error or a
repaired derived file. The process groups (kill -9, concurrent runs) are `python -m experiments faults
--full`."""
from __future__ import annotations

import shutil

import pytest
import torch

from experiments import faults

CACHE: dict = {}
CASES = faults.all_cases(full=False, cache=CACHE)


@pytest.fixture(scope="module", autouse=True)
def _remove_the_finished_runs():
    faults.prepare(CACHE)
    yield
    for folder in CACHE.values():
        shutil.rmtree(folder.parent, ignore_errors=True)


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.group}: {c.name}" for c in CASES])
def test_fault_ends_well(case):
    outcome, detail = faults.run_case(case)
    assert outcome == "ok", detail


def test_the_classifier_tells_the_outcomes_apart(tmp_path):
    """A refusal that changed a file is lost, an accepted run wrong, a catch-all message internal."""
    before = {"a": "1"}
    assert faults.refusal(2, "error: bad --lr\n", before, before)[0] == "ok"
    assert faults.refusal(2, "error: bad --lr\n", before, {"a": "2"})[0] == "lost"
    assert faults.refusal(0, "", before, before)[0] == "wrong"
    assert faults.refusal(2, "error: x\nTraceback\n", before, before)[0] == "wrong"
    assert faults.refusal(2, f"error: boom ({faults.CATCH_ALL})\n", before, before)[0] == "internal"
    assert faults.run_case(faults.Case("g", "sleeps", lambda tmp: __import__("time").sleep(5) or ("ok", ""),
                                       seconds=0.2))[0] == "hang"
