"""The epoch benchmark: arrangements parse, a worker trains one epoch of a preset's shape through fit."""
import pytest

from experiments.epoch_benchmark import parse_arrangement, shape_of, worker


def test_arrangements_parse_and_bad_ones_say_what_is_allowed():
    assert parse_arrangement("2x1") == (2, 1) and parse_arrangement("1X2") == (1, 2)
    for bad in ("2", "0x1", "ax2"):
        with pytest.raises(ValueError, match="PROCESSESxTHREADS|must be >= 1"):
            parse_arrangement(bad)


def test_a_worker_runs_the_training_loop_on_data_of_the_presets_shape():
    assert shape_of("afrnn-mnist") == (784, 1, 10, 54000)
    timing = worker("antisymmetric-mnist", batches=2, batch_size=4)
    assert timing["batches"] == 2 and timing["world_size"] == 1 and timing["seconds"] > 0
    assert timing["n_val"] == 1  # 8 training sequences, one validation sequence per 9


def test_a_worker_on_real_files_reads_them_through_the_tasks_loader(tmp_path, fake_mnist):
    """--data-root: the batches are the task's own sequences (tiny IDX files in MNIST's layout here)."""
    root = fake_mnist(tmp_path / "data", n_train=60)
    timing = worker("antisymmetric-mnist", batches=3, batch_size=4, data_root=str(root))
    assert timing["batches"] == 3 and timing["n_val"] == 1 and timing["seconds"] > 0
    with pytest.raises(ValueError, match="is not a directory"):
        worker("antisymmetric-mnist", batches=1, batch_size=4, data_root=str(tmp_path / "nothing"))
