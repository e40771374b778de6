"""Butcher tableaus: validation, order conditions, registry (explicit and implicit)."""
import dataclasses

import numpy as np
import pytest

from solvers import ButcherTableau, available, get_method, get_tableau
from solvers.tableaus import TABLEAUS

# Order conditions (Hairer, Norsett, Wanner I, Table II.2.1) up to order 4: (order, lhs(b, c, A), rhs).
ORDER_CONDITIONS = [
    (1, lambda b, c, A: b.sum(), 1.0),
    (2, lambda b, c, A: b @ c, 1 / 2),
    (3, lambda b, c, A: b @ c**2, 1 / 3),
    (3, lambda b, c, A: b @ A @ c, 1 / 6),
    (4, lambda b, c, A: b @ c**3, 1 / 4),
    (4, lambda b, c, A: b @ (c * (A @ c)), 1 / 8),
    (4, lambda b, c, A: b @ A @ c**2, 1 / 12),
    (4, lambda b, c, A: b @ A @ A @ c, 1 / 24),
]


@pytest.mark.parametrize("name", sorted(TABLEAUS))
def test_order_conditions_hold_up_to_the_stated_order(name):
    tab = get_tableau(name)
    c, A = np.array(tab.c), np.array(tab.A)
    weights = [(np.array(tab.b), tab.order)]
    if tab.b_err is not None:
        weights.append((np.array(tab.b_err), tab.order - 1 if tab.embedded_order is None else tab.embedded_order))
    for b, order in weights:
        for q, lhs, rhs in ORDER_CONDITIONS:
            if q <= order:  # Kvaerno's coefficients are polynomials in an irrational gamma: 1e-13
                assert lhs(b, c, A) == pytest.approx(rhs, abs=1e-13)
        if order < 4:  # the first condition of the next order fails: the order is not higher than stated
            assert any(abs(lhs(b, c, A) - rhs) > 1e-6 for q, lhs, rhs in ORDER_CONDITIONS if q == order + 1)


def test_properties():
    assert get_tableau("rk4").stages == 4 and get_tableau("dopri5").stages == 7
    implicit = ["backward_euler", "implicit_midpoint", "trapezoidal", "gauss_legendre4", "kvaerno3", "kvaerno4",
                "trbdf2"]
    assert [n for n in TABLEAUS if not get_tableau(n).is_explicit] == implicit
    assert get_tableau("trapezoidal").stages == 2 and get_tableau("gauss_legendre4").stages == 2
    assert sorted(n for n in TABLEAUS if get_tableau(n).is_adaptive) == ["adaptive_heun", "bosh3", "dopri5",
                                                                          "kvaerno3", "kvaerno4", "trbdf2"]
    # b is A's last row: the FSAL explicit pairs and the stiffly accurate implicit methods
    assert [n for n in TABLEAUS if get_tableau(n).is_stiffly_accurate] == ["bosh3", "dopri5", "backward_euler",
                                                                           "trapezoidal", "kvaerno3", "kvaerno4",
                                                                           "trbdf2"]
    assert [get_tableau(n).error_order for n in ("dopri5", "bosh3", "kvaerno4", "trbdf2")] == [5, 3, 4, 3]
    assert get_tableau("dopri5").is_fsal and get_tableau("bosh3").is_fsal
    assert not get_tableau("adaptive_heun").is_fsal and not get_tableau("rk4").is_fsal


def test_tableau_is_frozen_and_stores_float_tuples():
    tab = ButcherTableau("t", c=[0, "1/2"], A=[[0, 0], [0.5, 0]], b=[0, 1], order=2)
    assert tab.c == (0.0, 0.5) and tab.A == ((0.0, 0.0), (0.5, 0.0)) and isinstance(tab.b, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        tab.order = 3


@pytest.mark.parametrize("kwargs, match", [
    (dict(c=[0, 0.5], A=[[0, 0]], b=[0, 1]), r"A must be 2x2"),
    (dict(c=[0, 0.5], A=[[0, 0], [0.5]], b=[0, 1]), r"A must be 2x2"),
    (dict(c=[0, 0.5], A=[[0, 0], [0.5, 0]], b=[1]), r"b must have 2 entries"),
    (dict(c=[0, 0.5], A=[[0, 0], [0.5, 0]], b=[0, 1], b_err=[1]), r"b_err must have 2 entries"),
    (dict(c=[0, 0.4], A=[[0, 0], [0.5, 0]], b=[0, 1]), r"c\[1\] = 0.4 must equal the row sum"),
    (dict(c=[0.5, 0.5], A=[[0, 0.5], [0.5, 0]], b=[0, 1], b_err=[1, 0]),
     r"b_err .* only allowed for explicit or diagonally implicit tableaus \(A lower triangular\), but "
     r"A\[0\]\[1\] = 0.5"),
    (dict(c=[0, 0.5], A=[[0, 0], [0.5, 0]], b=[0, 1], embedded_order=1), r"embedded_order .* needs b_err"),
    (dict(c=[0.5, 0.4], A=[[0, 0.5], [0.5, 0]], b=[0, 1]), r"c\[1\] = 0.4 must equal the row sum of A\[1\]"),
    (dict(c=[0.5], A=[[0.5, 0.0]], b=[1]), r"A must be 1x1"),
    (dict(c=[0, float("nan")], A=[[0, 0], [0.5, 0]], b=[0, 1]), r"non-finite"),
    (dict(c=[], A=[], b=[]), r"at least one stage"),
    (dict(c=[0, 0.5], A=[[0, 0], [0.5, 0]], b=["x", 1]), r"sequence of numbers"),
])
def test_invalid_tableaus_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ButcherTableau("bad", order=kwargs.pop("order", 2), **kwargs)


def test_implicit_tableaus_are_accepted_and_registered_as_implicit():
    tab = ButcherTableau("radau_like", c=["1/3", 1], A=[["5/12", "-1/12"], ["3/4", "1/4"]], b=["3/4", "1/4"],
                         order=3)
    assert not tab.is_explicit and not tab.is_adaptive and tab.A[0] == (5 / 12, -1 / 12)
    assert ButcherTableau("dirk", c=[0.5, 1], A=[[0.5, 0], [0.5, 0.5]], b=[0.5, 0.5], order=1).is_explicit is False
    for name in ("backward_euler", "implicit_midpoint", "trapezoidal", "gauss_legendre4"):
        assert get_method(name).kind == "implicit" and get_method(name).tableau is get_tableau(name)


def test_order_must_be_positive():
    with pytest.raises(ValueError, match="order must be a positive int"):
        ButcherTableau("bad", c=[0], A=[[0]], b=[1], order=0)


def test_registry_lists_every_method_by_kind():
    assert available("fixed") == ["euler", "midpoint", "heun", "ralston", "rk3", "rk4", "rk38"]
    assert available("adaptive") == ["bosh3", "dopri5", "adaptive_heun"]
    assert available("implicit") == ["backward_euler", "implicit_midpoint", "trapezoidal", "gauss_legendre4"]
    assert available("partitioned") == ["partitioned_euler", "symplectic_euler"]
    assert available("reversible") == ["reversible_heun"]
    assert available("imex") == ["imex_euler", "ars222"]
    assert available("adaptive_implicit") == ["kvaerno3", "kvaerno4", "trbdf2"]
    assert available() == (available("fixed") + available("adaptive") + available("implicit")
                           + available("adaptive_implicit") + available("partitioned") + available("imex")
                           + available("reversible"))
    m = get_method("dopri5")
    assert (m.name, m.kind, m.tableau) == ("dopri5", "adaptive", get_tableau("dopri5"))
    assert get_method("partitioned_euler").tableau is None


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown method 'rk5'; known methods: euler, midpoint.*partitioned_euler"):
        get_method("rk5")
    with pytest.raises(ValueError, match=r"unknown method 'dopri8'.*dopri5"):
        get_tableau("dopri8")
    with pytest.raises(ValueError, match=r"'partitioned_euler' \(partitioned\) has no Butcher tableau"):
        get_tableau("partitioned_euler")
    with pytest.raises(ValueError,
                       match=r"unknown method kind 'stiff'; known kinds: fixed, adaptive, implicit, adaptive_implicit, "
                             r"partitioned"):
        available("stiff")
