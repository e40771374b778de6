"""Data for the sequential-classification experiments; nothing here downloads anything.

Readers: IDX (MNIST, Fashion-MNIST; :mod:`.idx`), CIFAR-10 python pickles through a restricted unpickler
(:mod:`.cifar`), data already on the machine (scikit-learn digits, MNIST-1D generated offline, Debian's
Fashion-MNIST; :mod:`.builtin`). Sequence transforms in :mod:`.transforms`; the tasks by name in
:mod:`.registry`.
"""
from experiments.data.registry import NOISE_MODES, TASKS, SequenceTask, TaskSpec, get_task, load_task
from experiments.data.splits import ArraySplits, MissingDataError

__all__ = ["NOISE_MODES", "TASKS", "SequenceTask", "TaskSpec", "get_task", "load_task", "ArraySplits",
           "MissingDataError"]
