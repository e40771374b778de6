"""The one registry that resolves solver names (``odeint(method=...)``, ``ODERNN(solver=...)``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from solvers.tableaus import TABLEAUS, ButcherTableau

KINDS = ("fixed", "adaptive", "implicit", "partitioned", "reversible")


@dataclass(frozen=True)
class Method:
    """A named solver: ``kind`` is "fixed" (explicit RK on a grid), "adaptive" (embedded RK with error
    control), "implicit" (implicit RK on a grid, stages solved by Newton's method), "partitioned"
    (Gauss-Seidel Euler over blocks) or "reversible" (reversible Heun, ``solvers.reversible``: a state pair
    that can be run backwards exactly); the last two have no tableau (``tableau`` is None)."""

    name: str
    kind: str
    tableau: Optional[ButcherTableau]
    order: int = 0

    def __post_init__(self) -> None:
        """``order`` defaults to the tableau's (methods without one give theirs explicitly)."""
        if not self.order and self.tableau is not None:
            object.__setattr__(self, "order", self.tableau.order)


def _kind(tableau: ButcherTableau) -> str:
    if tableau.is_adaptive:
        return "adaptive"
    return "fixed" if tableau.is_explicit else "implicit"


_METHODS: dict[str, Method] = {
    **{name: Method(name, _kind(tab), tab) for name, tab in TABLEAUS.items()},
    "partitioned_euler": Method("partitioned_euler", "partitioned", None, order=1),
    "reversible_heun": Method("reversible_heun", "reversible", None, order=2),
}


def available(kind: Optional[str] = None) -> list[str]:
    """Every registered method name, or those of one ``kind`` (``KINDS``)."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown method kind {kind!r}; known kinds: {', '.join(KINDS)}")
    return [name for name, m in _METHODS.items() if kind is None or m.kind == kind]


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
