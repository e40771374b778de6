"""AntisymmetricRNN Fig. 1 and the radius table: the numbers the figures show."""
import numpy as np
import pytest
import torch

from experiments.dynamics import antisymmetric_fig1, planar
from experiments.dynamics.radius_table import prediction_and_verdict, radius_table, to_markdown

T, EPS = 50, 0.1
NEAR = planar.starts(((0.01, 0.0),))


def ratio(name, method, h0):
    return planar.radius_ratio(planar.feedback_trajectory(planar.matrix(name), h0, T, EPS, method))


def test_feedback_euler_is_the_papers_recurrence():
    """h_t = h_{t-1} + eps tanh(W h_{t-1} + x_t), written out independently of the solvers."""
    W = planar.matrix("W+")
    x = torch.randn(T, 3, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    h = planar.starts()
    expected = [h]
    for k in range(T):
        h = h + EPS * torch.tanh(h @ W.T + x[k])
        expected.append(h)
    torch.testing.assert_close(planar.feedback_trajectory(W, planar.starts(), T, EPS, "euler", x),
                               torch.stack(expected), rtol=1e-14, atol=1e-14)


def test_w0_under_euler_spirals_out_at_the_linear_rate():
    """Prop. 2: near the origin each Euler step multiplies the radius by |1 + 0.2i|, so 1.04^25 = 2.67."""
    assert ratio("W0", "euler", NEAR).item() == pytest.approx(abs(1 + 0.2j) ** 50, rel=0.05)
    assert (ratio("W0", "euler", planar.starts()) > 1.3).all()


def test_w0_under_rk4_keeps_its_radius_near_the_origin():
    assert ratio("W0", "rk4", NEAR).item() == pytest.approx(1.0, abs=0.01)


def test_wdiff_under_euler_keeps_the_papers_starts_near_their_radius():
    assert torch.allclose(ratio("Wdiff", "euler", planar.starts()), torch.ones(3, dtype=torch.float64), rtol=0.1)
    # near the origin the same scheme grows at the linear rate |1 + 0.1 (-0.15 + 2i)|^50 = 1.29
    assert ratio("Wdiff", "euler", NEAR).item() == pytest.approx(abs(1 + 0.1 * (-0.15 + 2j)) ** 50, rel=0.01)


@pytest.mark.parametrize("method", ["rk4", "midpoint"])
def test_wdiff_under_higher_order_methods_decays_like_the_ode(method):
    """Without Euler's outward drift the diffusion wins: the radius shrinks to about exp(-0.15 t) ~ 0.47
    near the origin and to 0.50-0.63 from the paper's starts (tanh' < 1 slows the decay there)."""
    assert ratio("Wdiff", method, NEAR).item() == pytest.approx(np.exp(-0.15 * T * EPS), rel=0.01)
    r = ratio("Wdiff", method, planar.starts())
    assert ((r > 0.45) & (r < 0.7)).all()


def test_radius_table_agrees_with_the_linearisation_and_the_check():
    rows = radius_table(T, EPS, methods=("euler", "midpoint", "heun", "rk3", "rk4", "dopri5", "partitioned_euler"))
    by = {(r["matrix"], r["method"]): r for r in rows}
    for (name, method), row in by.items():
        if method != "partitioned_euler":  # a non-normal amplification matrix: the radius is not invariant
            assert row["ratio_near_origin"] == pytest.approx(row["predicted"], rel=0.01), (name, method)
    verdicts = {key: row["verdict"] for key, row in by.items()}
    assert verdicts[("W0", "euler")] == verdicts[("W0", "midpoint")] == verdicts[("W0", "heun")] == "outside"
    assert verdicts[("W0", "rk3")] == verdicts[("W0", "rk4")] == verdicts[("W0", "partitioned_euler")] == "inside"
    assert verdicts[("Wdiff", "euler")] == "outside"  # |1 + 0.1(-0.15 + 2i)| = 1.005
    assert all(verdicts[("Wdiff", m)] == "inside" for m in ("midpoint", "heun", "rk3", "rk4", "dopri5"))
    # symplectic Euler keeps W0 bounded: it oscillates on an ellipse instead of spiralling out
    assert 0.9 < by[("W0", "partitioned_euler")]["ratio_near_origin"] < 1.1
    text = to_markdown(rows, T, EPS)
    assert text.count("\n| W") == len(rows) and "2.66" in text


def test_prediction_is_the_stability_polynomial():
    predicted, inside = prediction_and_verdict(planar.matrix("W0"), EPS, "rk4", T)
    z = 0.2j
    assert predicted == pytest.approx(abs(1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24) ** T, rel=1e-12)
    assert inside


def test_fig1_panels_show_the_papers_behaviour():
    _, numbers = antisymmetric_fig1.fig1("euler", T, EPS)
    panels = {p["name"].split(")")[0] + ")": p for p in numbers["panels"]}
    assert len(panels) == 8
    for key in ("(b)", "(c)", "(d)"):  # identity and orthogonal: every start contracts towards the origin
        assert max(panels[key]["radius_ratio"]) < 0.5
    assert min(panels["(e)"]["radius_ratio"]) > 5  # W+: away from the origin
    assert max(panels["(f)"]["radius_ratio"]) < 1e-3  # W-: into the origin
    assert min(panels["(g)"]["radius_ratio"]) > 1.3  # W0: outward spirals
    assert np.allclose(panels["(h)"]["radius_ratio"], 1.0, rtol=0.1)  # Wdiff: near-constant radius
    assert np.allclose(panels["(g)"]["eigenvalues"], [[0, 2], [0, -2]])
