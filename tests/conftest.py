"""Suite-wide guard: no test may leak torch's global settings into the next one."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _restore_torch_globals():
    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    yield
    torch.set_default_dtype(dtype)
    torch.set_num_threads(threads)


@pytest.fixture
def float64():
    """Run a test with float64 as torch's default dtype (restored afterwards by the guard above)."""
    torch.set_default_dtype(torch.float64)
    yield
