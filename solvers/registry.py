"""The one registry that resolves solver names (``odeint(method=...)``, ``ODERNN(solver=...)``) to method
objects (``solvers.methods``). The class of a tableau method is chosen here, once, from its tableau."""
from __future__ import annotations

from typing import Optional

from solvers.methods import (ARS222, IMEX_EULER, AdaptiveDIRK, EmbeddedRK, ExplicitRK, ImexRK, ImplicitRK, Method, PartitionedEuler,
                             ReversibleHeun)
from solvers.tableaus import TABLEAUS, ButcherTableau

CLASSES: dict[str, type[Method]] = {cls.kind: cls for cls in
                                    (ExplicitRK, EmbeddedRK, ImplicitRK, AdaptiveDIRK, PartitionedEuler,
                                     ReversibleHeun, ImexRK)}
KINDS = tuple(CLASSES)
"""The kinds' labels, for ``available(kind)``: fixed, adaptive, implicit, adaptive_implicit, partitioned,
reversible, imex."""


def _tableau_method(name: str, tableau: ButcherTableau) -> Method:
    if tableau.is_adaptive:
        cls = EmbeddedRK if tableau.is_explicit else AdaptiveDIRK
    else:
        cls = ExplicitRK if tableau.is_explicit else ImplicitRK
    return cls(name, tableau)


def method_of_tableau(tableau: ButcherTableau) -> Method:
    """The registered method with this tableau, else a new (unregistered) one of the class it implies."""
    for method in _METHODS.values():
        if method.tableau == tableau:
            return method
    return _tableau_method(tableau.name, tableau)


_METHODS: dict[str, Method] = {
    **{name: _tableau_method(name, tab) for name, tab in TABLEAUS.items()},
    "partitioned_euler": PartitionedEuler("partitioned_euler", order=1),
    "symplectic_euler": PartitionedEuler("symplectic_euler", order=1),
    "imex_euler": ImexRK("imex_euler", IMEX_EULER),
    "ars222": ImexRK("ars222", ARS222),
    "reversible_heun": ReversibleHeun("reversible_heun", order=2),
}


def available(kind: Optional[str] = None) -> list[str]:
    """Every registered method name, or those of one kind (``KINDS``)."""
    if kind is not None and kind not in CLASSES:
        raise ValueError(f"unknown method kind {kind!r}; known kinds: {', '.join(KINDS)}")
    return [name for name, m in _METHODS.items() if kind is None or type(m) is CLASSES[kind]]


def methods_taking(option: str) -> list[str]:
    """The methods that take the ``odeint`` option ``option`` (for error messages)."""
    return [name for name, m in _METHODS.items() if option in m.options]


def get_method(name: str) -> Method:
    """The registered method called ``name``; ``ValueError`` listing the known names otherwise."""
    try:
        return _METHODS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(available())}") from None


def get_tableau(name: str) -> ButcherTableau:
    """The Butcher tableau of method ``name``; ``ValueError`` for unknown names and for methods without one."""
    method = get_method(name)
    if method.tableau is None:
        with_tableau = [n for n, m in _METHODS.items() if m.tableau is not None]
        raise ValueError(f"method {name!r} ({method.kind}) has no Butcher tableau; "
                         f"methods with one: {', '.join(with_tableau)}")
    return method.tableau
