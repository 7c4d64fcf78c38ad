"""Inductors between two nodes: branches with a flux state."""

import numpy as np
from brian2 import amp, ohm
from brian2.units.allunits import henry, mweber, weber
from brian2.units.fundamentalunits import get_dimensions

from ephys_eqprop.elements import BranchElement, Parameter, State
from ephys_eqprop.elements.base import differentiate, expression_dimensions

__all__ = ["Inductor", "NonlinearInductor"]


class Inductor(BranchElement):
    """A linear inductor ``L`` between two nodes, with an optional series resistance.

    State: the flux ``phi`` (weber), ``dphi/dt = v_pre - v_post - R i``; current
    ``i = phi / L`` from ``pre`` to ``post``. ``L`` (henry) is the parameter given
    per synapse to :meth:`Circuit.connect` (``values=``).

    Parameters
    ----------
    R : Quantity, ohm
        Series resistance of the winding (default 0: an ideal inductor). With
        ``R > 0`` the branch is a series RL: a driven series RLC circuit is an
        input, this branch and a capacitor node.

    Notes
    -----
    Its energy ``½ φ²/L`` is stored, not dissipated: equilibrium propagation
    on co-contents has no local quantity for ``L``, so only the adjoint
    estimator computes gradients for it.
    """

    learnable = "L"
    learnable_unit = henry
    parameters = (Parameter("R", ohm, 0 * ohm),)
    current = "phi/L"
    local = None
    states = (State("phi", weber, "v_pre - v_post - R*phi/L"),)

    def validate(self):
        if float(self.values["R"]) < 0:
            raise ValueError(f"Inductor needs R >= 0; got {self.values['R']}.")

    def check_values(self, name, values):
        q = super().check_values(name, values)
        if np.any(np.asarray(q) <= 0):
            raise ValueError(f"{name}: inductances must be positive (henry); got {values!r}.")
        return q


class NonlinearInductor(Inductor):
    """An inductor with a nonlinear flux-current law ``i = h(phi)``.

    Parameters
    ----------
    current : str
        ``h``: the branch current (amp) as a Brian2 expression in ``phi``
        (weber), the per-synapse inductance ``L`` (henry, the small-signal
        inductance at ``phi = 0``) and the names in ``params``. Default: a
        core that hardens as it saturates, ``phi/L * (1 + (phi/Phi_s)**2)``.
    R : Quantity, ohm
        Series resistance.
    params : dict of str to Quantity
        Parameters of ``current`` (the default law uses ``Phi_s``, default 1 mWb).
    """

    def __init__(self, current: str = "phi/L*(1 + (phi/Phi_s)**2)", *, R=0 * ohm,
                 **params):
        if current == "phi/L*(1 + (phi/Phi_s)**2)":
            params.setdefault("Phi_s", 1 * mweber)
        self.parameters = Inductor.parameters + tuple(
            Parameter(n, v, v) for n, v in params.items())
        self.current = current
        super().__init__(R=R, **params)
        probe = {"phi": 1 * weber, "L": 1 * henry, **self.values}
        dims = expression_dimensions(current, probe, f"NonlinearInductor current={current!r}")
        if dims is not get_dimensions(amp):
            raise TypeError(f"NonlinearInductor current={current!r} must be a current (amp); "
                            f"it has dimensions {dims}.")
        differentiate(current, "phi", "NonlinearInductor current")
        # dphi/dt = v_pre - v_post - R i
        self.states = (State("phi", weber, f"v_pre - v_post - R*({current})"),)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.values.items())
        return f"NonlinearInductor({self.current!r}, {args})"
