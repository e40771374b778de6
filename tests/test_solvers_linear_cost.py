"""Cost of forward+backward with an output at each of T times must be linear in T (2T at most 2.2x T).

Never timed here (the machine is shared; ``python -m solvers.bench_linear`` times it). Two deterministic
proxies instead, both quadratic for a solver that writes outputs into a preallocated tensor under autograd:
bytes of tensors saved for backward in the forward pass, and elements produced by every operator of the
backward pass (counted with a TorchDispatchMode). torchdiffeq's odeint, which writes its outputs into one
solution tensor, is the negative control: its backward count grows ~3.5x.
"""
import pytest
import torchdiffeq

from solvers import odeint
from solvers.bench_linear import forward_backward_cost


@pytest.mark.parametrize("method", ["euler", "rk4", "dopri5", "partitioned_euler"])
def test_forward_backward_cost_is_linear_in_the_number_of_outputs(method):
    extra = dict(partition=(3, 5)) if method == "partitioned_euler" else dict(rtol=1e-5)

    def solve(f, y0, t):
        return odeint(f, y0, t, method=method, **extra)

    (saved_1, backward_1), (saved_2, backward_2) = forward_backward_cost(solve, 50), forward_backward_cost(solve, 100)
    assert saved_2 / saved_1 <= 2.2 and backward_2 / backward_1 <= 2.2


def test_the_proxy_detects_quadratic_cost():
    def solve(f, y0, t):
        return torchdiffeq.odeint(f, y0, t, method="euler")

    (_, backward_1), (_, backward_2) = forward_backward_cost(solve, 50), forward_backward_cost(solve, 100)
    assert backward_2 / backward_1 > 3.0
