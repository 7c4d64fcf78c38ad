"""Inductors between two nodes: branches with a flux state."""

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
    on co-contents has no local quantity for ``L`` (its current is set by its
    state, not by the voltage across it), so only the adjoint estimator computes
    gradients for it. ``L`` must stay positive: training it needs a positive
    lower bound (``eq.Bounds(low=...)``).
    """

    learnable = "L"
    learnable_unit = henry
    learnable_sign = "positive"
    parameters = (Parameter("R", ohm, 0 * ohm, sign="nonnegative"),)
    current = "phi/L"
    states = (State("phi", weber, "v_pre - v_post - R*phi/L"),)
    spice_words = ("inductors", "inductance")

    def validate(self):
        if float(self.values["R"]) < 0:
            raise ValueError(f"Inductor needs R >= 0; got {self.values['R']}.")

    def spice(self, ctx, a, b, theta, state0, label):
        """An ``L`` element (``IC=`` its current ``φ/L``), then its series ``R`` if any."""
        R = float(self.values["R"])
        i0 = 0.0 if state0 is None else float(state0["phi"]) / theta
        ic = f" IC={ctx.number(i0)}" if ctx.transient else ""
        if R > 0:
            m = ctx.fresh(f"{label}_m")
            ctx.add(f"L_{label} {a} {m} {ctx.number(theta)}{ic}")
            ctx.add(f"R_{label}_ser {m} {b} {ctx.number(R)}")
        else:
            ctx.add(f"L_{label} {a} {b} {ctx.number(theta)}{ic}")

    def spice_note(self):
        R = float(self.values["R"])
        return f" with series R = {R!r} ohm" if R > 0 else ""


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

    # no SPICE inductor takes the current as a function of the flux: the generic form
    spice = BranchElement.spice
    spice_words = ("nonlinear inductors (flux on a 1 F node, B sources)", "inductance")

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.values.items())
        return f"NonlinearInductor({self.current!r}, {args})"
