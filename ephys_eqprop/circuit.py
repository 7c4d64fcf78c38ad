"""Circuit descriptions: inputs, node groups, connections, outputs.

A :class:`Circuit` is a description; :meth:`Circuit.build` turns it into plain
Brian2 objects (one :class:`~brian2.NeuronGroup` per node group or input, one
:class:`~brian2.Synapses` per connection) wrapped in a
:class:`~ephys_eqprop.network.CircuitNetwork`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from brian2 import Quantity, get_dimensions, ms, second, siemens

from .elements.base import check_quantity, check_sign, valid_name
from .elements.branch import BranchElement
from .elements.node import NodeModel
from .errors import CircuitError

__all__ = ["Circuit", "CircuitError", "ParameterSpec", "layered"]


@dataclass(frozen=True)
class ParameterSpec:
    """A learnable parameter of a circuit, as estimators, optimizers and checkpoints see it.

    Attributes
    ----------
    name : str
        Its public name: the connection name (``"x->h"``) for a branch element's
        parameter, ``"<group>.<variable>"`` (``"hh.g_Na"``) for a per-node one.
    kind : {"connection", "node"}
    owner : str
        The connection or node group that holds it.
    variable : str
        The Brian2 variable holding it (in the owner's ``Synapses`` or ``NeuronGroup``).
    unit : Quantity
        One unit of the parameter.
    sign : {"nonnegative", "positive", "signed"}
        Capability: the values it may take (the default bounds of learning).
    shape : tuple of int
        Shape of its values in ``get_params``: ``(n_pre, n_post)`` or ``(n_syn,)``
        for a connection, ``(n,)`` for a node group.
    """

    name: str
    kind: str
    owner: str
    variable: str
    unit: Quantity
    sign: str
    shape: tuple


@dataclass
class InputSpec:
    name: str
    n: int
    doubled: bool
    value: np.ndarray | None = None  # fixed source voltages (bias sources), volt

    @property
    def size(self) -> int:
        return 2 * self.n if self.doubled else self.n


@dataclass
class CurrentSpec:
    """A current clamp: a current injected into every node of a node group."""

    name: str
    target: str
    n: int
    value: np.ndarray | None = None  # fixed currents, amp, shape (n,)

    @property
    def variable(self) -> str:
        """The node-group variable that carries it (added to the node's current)."""
        return f"Iclamp_{self.name}"


@dataclass
class NodeSpec:
    name: str
    n: int
    model: NodeModel
    #: initial values of the learnable per-node parameters, by node-group variable, shape (n,)
    values: dict = field(default_factory=dict)

    @property
    def size(self) -> int:
        return self.n


@dataclass
class ConnectionSpec:
    name: str
    index: int
    pre: str
    post: str
    element: BranchElement
    i: np.ndarray
    j: np.ndarray
    values: Quantity
    dense: bool
    shape: tuple

    @property
    def ident(self) -> str:
        return f"c{self.index}"


class Circuit:
    """A circuit of node groups, voltage-source inputs and two-terminal connections.

    Examples
    --------
    >>> import numpy as np
    >>> import ephys_eqprop as eq
    >>> from brian2 import nF, uS
    >>> c = eq.Circuit()
    >>> c.add_input("x", 3)
    >>> c.add_nodes("y", 2, eq.models.CapacitorNode(C=1*nF, g_leak=1*uS))
    >>> c.connect("x", "y", eq.models.Resistor(), g=np.full((3, 2), 2.0)*uS)
    >>> c.set_output("y")
    """

    def __init__(self):
        self.inputs: dict[str, InputSpec] = {}
        self.currents: dict[str, CurrentSpec] = {}
        self.nodes: dict[str, NodeSpec] = {}
        self.connections: dict[str, ConnectionSpec] = {}
        self.output: str | None = None
        self.differential: bool = False

    # ------------------------------------------------------------------ description
    def _check_new_name(self, name: str, what: str) -> None:
        if not valid_name(name):
            raise CircuitError(
                f"{what} name must start with a letter and contain only letters, digits "
                f"and underscores; got {name!r}."
            )
        if name in self.inputs or name in self.nodes or name in self.currents:
            raise CircuitError(f"{what} name {name!r} is already used; choose another name.")

    @staticmethod
    def _check_count(n, what: str) -> int:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise CircuitError(f"{what} must be a positive integer; got {n!r}.")
        return int(n)

    def add_input(self, name: str, n: int, *, doubled: bool = False, value=None) -> None:
        """Add ``n`` ideal voltage sources (the circuit's inputs).

        Parameters
        ----------
        name : str
            Name of the input group.
        n : int
            Number of input values per sample.
        doubled : bool
            If true, the group holds ``2 n`` sources driven by ``x`` and ``-x``
            (sources ``0..n-1`` then ``n..2n-1``), which lets positive conductances
            act as signed weights.
        value : Quantity, volt, scalar or shape (n,), optional
            Fixed source voltages (bias sources). Fixed inputs are not part of
            the data ``x`` given to estimators.
        """
        self._check_new_name(name, "Input")
        n = self._check_count(n, "n")
        if value is not None:
            from brian2 import volt

            value = np.broadcast_to(np.asarray(check_quantity("value", value, volt), float),
                                    (n,)).copy()
        self.inputs[name] = InputSpec(name, n, bool(doubled), value)

    @property
    def data_inputs(self) -> list:
        """Names of the voltage inputs driven by data (not fixed bias sources)."""
        return [n for n, s in self.inputs.items() if s.value is None]

    def add_current_input(self, name: str, target: str, *, value=None) -> None:
        """Inject a current into every node of a node group (a current clamp).

        Parameters
        ----------
        name : str
            Name of the input: its data are ``x[name]``, currents in amp, one channel
            per node of ``target`` — shape ``(n_samples, n)`` for static runs, a
            :class:`~ephys_eqprop.TimeSeries` ``(n_samples, n_steps, n)`` for
            time-varying ones (a different waveform per batch sample).
        target : str
            The node group it feeds (``I > 0`` flows into the nodes).
        value : Quantity, amp, scalar or shape (n,), optional
            A constant current instead of data (not part of ``x``).
        """
        from brian2 import amp

        self._check_new_name(name, "Input")
        if target in self.inputs:
            raise CircuitError(
                f"target={target!r} is an input (an ideal voltage source): a current injected "
                "into it changes nothing. Inject into a node group.")
        if target not in self.nodes:
            raise CircuitError(f"Unknown node group {target!r} for current input {name!r}; node "
                               f"groups are {sorted(self.nodes)}. Add it with add_nodes first.")
        n = self.nodes[target].n
        if value is not None:
            value = np.broadcast_to(np.asarray(check_quantity("value", value, amp), float),
                                    (n,)).copy()
        self.currents[name] = CurrentSpec(name, target, n, value)

    @property
    def data_currents(self) -> list:
        """Names of the current inputs driven by data (not constant currents)."""
        return [n for n, s in self.currents.items() if s.value is None]

    def split_inputs(self, x) -> tuple:
        """Split data ``x`` into its voltage-input part and its current-input part.

        ``x`` is a dict by input name, or — when the circuit has one data input, or
        only voltage inputs — the values themselves.

        Returns
        -------
        tuple (voltages, currents)
            ``voltages``: what :meth:`source_values` takes (``None`` if the circuit has
            no voltage data inputs); ``currents``: dict of name to the values given.
        """
        volts, amps = self.data_inputs, self.data_currents
        if not isinstance(x, dict):
            if amps and not volts and len(amps) == 1:
                return None, {amps[0]: x}
            if amps:
                raise CircuitError(
                    f"The circuit has voltage inputs {volts} and current inputs {amps}; pass x "
                    "as a dict {input name: values}.")
            return x, {}
        unknown = sorted(set(x) - set(volts) - set(amps))
        if unknown:
            raise CircuitError(f"Unknown input(s) {unknown}; data inputs are {volts + amps}.")
        missing = sorted(set(amps) - set(x))
        if missing:
            raise CircuitError(f"Missing values for current inputs {missing}.")
        voltages = {k: v for k, v in x.items() if k in volts}
        return (voltages if volts else None), {k: x[k] for k in amps}

    def input_values(self, x) -> tuple:
        """Source voltages and clamp currents of a set of samples, from data ``x``.

        Returns
        -------
        tuple (src, currents, n_samples)
            ``src``: numpy.ndarray, shape (n_samples, n_sources), volt (no columns if the
            circuit has no voltage inputs); ``currents``: dict of current-input name to
            numpy.ndarray, shape (n_samples, n), amp (constant ones included).
        """
        volts, currents = self.split_inputs(x)
        n_amp = None
        if currents:
            n_amp = next(iter(self.current_values(currents).values())).shape[0]
        if self.inputs:
            src = self.source_values(volts if volts is not None else {}, n_samples=n_amp)
        else:
            src = np.zeros((n_amp or 1, 0))
        n_samples = src.shape[0]
        if n_amp is not None and n_amp != n_samples:
            raise CircuitError(f"The voltage inputs have {n_samples} samples but the current "
                               f"inputs {n_amp}; give every input the same samples.")
        return src, self.current_values(currents, n_samples), n_samples

    def current_values(self, currents: dict, n_samples: int | None = None) -> dict:
        """Currents (amp, plain arrays, shape (n_samples, n)) of every current input.

        Parameters
        ----------
        currents : dict of str to Quantity
            The data currents, shape ``(n_samples, n)`` each (see :meth:`split_inputs`).
        n_samples : int, optional
            Number of samples when ``currents`` is empty (constant currents only).
        """
        from brian2 import amp

        out = {name: _data_array(name, currents[name], self.currents[name].n, amp,
                                 "currents (amp), e.g. 0.5*nA",
                                 f" (one current per node of {self.currents[name].target!r})")
               for name in self.data_currents}
        n = _n_samples(out, n_samples)
        for name, spec in self.currents.items():
            if spec.value is not None:
                out[name] = np.tile(spec.value, (n, 1))
        return out

    def source_values(self, x, n_samples: int | None = None) -> np.ndarray:
        """All source voltages of the circuit for a set of samples.

        Parameters
        ----------
        x : Quantity, shape (n_samples, n_in), volt; or dict of such by input name
            Values of the data inputs (fixed bias sources are filled in).
        n_samples : int, optional
            Number of samples when the circuit has no voltage data inputs (default 1).

        Returns
        -------
        numpy.ndarray, shape (n_samples, n_sources)
            Source voltages in volt, inputs in the order they were added, doubled
            inputs as ``(x, -x)``.
        """
        from brian2 import volt

        names = self.data_inputs
        if not self.inputs:
            raise CircuitError("The circuit has no inputs (add_input); nothing to set.")
        if not isinstance(x, dict):
            if len(names) != 1:
                raise CircuitError(
                    f"The circuit has data inputs {names}; pass x as a dict "
                    "{input name: values}."
                )
            x = {names[0]: x}
        x = {k: v for k, v in x.items() if k not in self.currents}
        unknown = sorted(set(x) - set(names))
        if unknown:
            raise CircuitError(f"Unknown input(s) {unknown}; data inputs are {names}.")
        missing = sorted(set(names) - set(x))
        if missing:
            raise CircuitError(f"Missing values for inputs {missing}.")
        arrays = {name: _data_array(name, x[name], self.inputs[name].n, volt,
                                    "voltages (volt), e.g. x*volt")
                  for name in names}
        n_samples = _n_samples(arrays, n_samples)
        parts = []
        for name, spec in self.inputs.items():
            arr = arrays[name] if spec.value is None else np.tile(spec.value, (n_samples, 1))
            parts.append(np.concatenate([arr, -arr], axis=1) if spec.doubled else arr)
        return np.concatenate(parts, axis=1)

    def add_nodes(self, name: str, n: int, model: NodeModel, *, values: dict | None = None) -> None:
        """Add a group of ``n`` nodes sharing one node model.

        Parameters
        ----------
        name : str
            Name of the node group.
        n : int
            Number of nodes.
        model : NodeModel
            E.g. ``eq.models.CapacitorNode(C=1*nF, g_leak=1*uS)``.
        values : dict of str to Quantity, optional
            Initial values of the model's learnable per-node parameters, by their
            node-group name (``{"g_leak": ...}``), each a scalar or shape ``(n,)``;
            default the values declared by the elements.
        """
        self._check_new_name(name, "Node group")
        if not isinstance(model, NodeModel):
            raise CircuitError(
                f"model must be a NodeModel such as eq.models.CapacitorNode(...); got "
                f"{type(model).__name__}."
            )
        n = self._check_count(n, "n")
        learnable = {v.name: v for v in model.learnable_variables()}
        vals = {}
        for var in learnable.values():
            vals[var.name] = np.full(n, float(np.asarray(model.value(var))))
        for key, val in (values or {}).items():
            if key not in learnable:
                raise CircuitError(
                    f"add_nodes({name!r}, values=...) names {key!r}, which is not a learnable "
                    f"parameter of the node model; its learnable parameters are "
                    f"{sorted(learnable)} (choose more with learn= on the elements).")
            q = check_quantity(f"values[{key!r}]", val, learnable[key].unit)
            check_sign(f"values[{key!r}]", q, model.sign(learnable[key]))
            arr = np.asarray(q, dtype=float)
            if arr.shape not in ((), (n,)):
                raise CircuitError(f"values[{key!r}] must be a scalar or have shape ({n},); got "
                                   f"{arr.shape}.")
            vals[key] = np.broadcast_to(arr, (n,)).astype(float).copy()
        for key in vals:
            if f"{name}.{key}" in self.connections:
                raise CircuitError(f"Parameter name {name}.{key} is already a connection name.")
        self.nodes[name] = NodeSpec(name, n, model, vals)

    def parameters(self) -> dict[str, ParameterSpec]:
        """Every learnable parameter of the circuit by public name: connections first (in
        the order they were added), then per-node parameters by group."""
        out = {}
        for conn in self.connections.values():
            el = conn.element
            out[conn.name] = ParameterSpec(
                conn.name, "connection", conn.name, el.learnable,
                Quantity(1.0, dim=get_dimensions(conn.values)), el.sign,
                conn.shape if conn.dense else (conn.i.size,))
        for gname, spec in self.nodes.items():
            for var in spec.model.learnable_variables():
                out[f"{gname}.{var.name}"] = ParameterSpec(
                    f"{gname}.{var.name}", "node", gname, var.name, var.unit,
                    spec.model.sign(var), (spec.n,))
        return out

    def _size(self, name: str, role: str) -> int:
        if name in self.nodes:
            return self.nodes[name].size
        if name in self.inputs:
            return self.inputs[name].size
        known = sorted(self.nodes) + sorted(self.inputs)
        raise CircuitError(
            f"Unknown {role} {name!r}; known inputs and node groups are {known}. "
            "Add it with add_input or add_nodes first."
        )

    def connect(self, pre: str, post: str, element: BranchElement, g=None, *, values=None,
                i=None, j=None, name: str | None = None, allow_self: bool = False) -> str:
        """Connect two groups with two-terminal elements (synapses).

        Parameters
        ----------
        pre, post : str
            Names of the groups; ``pre`` may be an input, ``post`` must be a node group.
        element : BranchElement
            The element kind, e.g. ``eq.models.Resistor()``.
        g : Quantity, shape (n_pre, n_post), or shape (n_syn,) with ``i`` and ``j``
            Values of the element's learnable parameter (siemens for a resistor).
            A dense array connects every pair (zero entries included, so that
            they can be learned).
        values : Quantity, optional
            The same as ``g``, for elements whose parameter is not a conductance
            (an inductor's ``L``, henry); give one of ``g`` and ``values``.
        i, j : array_like of int, shape (n_syn,), optional
            Sparse connectivity: pre and post indices of each synapse.
        name : str, optional
            Connection name, default ``"pre->post"``.
        allow_self : bool
            Allow a node to connect to itself (an autapse of a directed element such as
            a chemical synapse; a dense connection from a group to itself then includes
            them). A two-terminal element between a node and itself carries no current
            and is always refused.

        Returns
        -------
        str
            The connection name used by ``get_params`` / ``set_params`` and gradients.
        """
        n_pre = self._size(pre, "pre group")
        if post in self.inputs:
            raise CircuitError(
                f"post={post!r} is an input (an ideal voltage source); connections must end "
                "on a node group. Swap pre and post."
            )
        n_post = self._size(post, "post group")
        if not isinstance(element, BranchElement):
            raise CircuitError(
                f"element must be a BranchElement such as eq.models.Resistor(); got "
                f"{type(element).__name__}."
            )
        name = f"{pre}->{post}" if name is None else name
        if not isinstance(name, str) or not name:
            raise CircuitError(f"name must be a non-empty string; got {name!r}.")
        if name in self.connections:
            raise CircuitError(
                f"A connection named {name!r} already exists; pass name=... to add another."
            )
        if any(name == f"{g}.{k}" for g, sp in self.nodes.items() for k in sp.values):
            raise CircuitError(f"Connection name {name!r} is the name of a node parameter; "
                               "choose another name.")
        if g is not None and values is not None:
            raise CircuitError("Give the element's parameter values as g= or values=, not both.")
        argname = "g" if values is None else "values"
        g = values if g is None else g
        if g is None:
            raise CircuitError(
                f"connect({pre!r}, {post!r}) needs g=: the initial values of the element's "
                f"parameter {element.learnable!r} (g= or values=), shape ({n_pre}, {n_post}) "
                "or (n_syn,) "
                "with i and j."
            )
        vals = element.check_values(argname, g)
        if i is None and j is None:
            if np.shape(vals) != (n_pre, n_post):
                raise CircuitError(
                    f"g for {name!r} must have shape (n_pre, n_post) = ({n_pre}, {n_post}); "
                    f"got {np.shape(vals)}. For sparse connectivity pass i= and j=."
                )
            ii, jj = np.meshgrid(np.arange(n_pre), np.arange(n_post), indexing="ij")
            ii, jj = ii.ravel(), jj.ravel()
            flat = Quantity(np.asarray(vals).ravel(), dim=vals.dim)
            dense = True
        else:
            if i is None or j is None:
                raise CircuitError("Sparse connections need both i= and j=.")
            ii = np.asarray(i, dtype=int).ravel()
            jj = np.asarray(j, dtype=int).ravel()
            if ii.shape != jj.shape or np.shape(vals) not in (ii.shape, ()):
                raise CircuitError(
                    f"i, j and g must have the same length; got {ii.shape}, {jj.shape} and "
                    f"{np.shape(vals)}."
                )
            if ii.size == 0:
                raise CircuitError("Sparse connection with no synapses (empty i and j).")
            if ii.min() < 0 or ii.max() >= n_pre or jj.min() < 0 or jj.max() >= n_post:
                raise CircuitError(
                    f"i must lie in [0, {n_pre}) and j in [0, {n_post}); got i in "
                    f"[{ii.min()}, {ii.max()}], j in [{jj.min()}, {jj.max()}]."
                )
            if pre == post and np.any(ii == jj) and not allow_self:
                raise CircuitError("A node cannot be connected to itself (i == j); pass "
                                   "allow_self=True for autapses of a directed element.")
            vals_arr = np.broadcast_to(np.asarray(vals), ii.shape).astype(float)
            flat = Quantity(vals_arr.copy(), dim=vals.dim)
            dense = False
        if dense and pre == post and not allow_self:
            raise CircuitError(
                "Dense connections from a group to itself would connect nodes to themselves; "
                "use sparse i= and j= for recurrent connections, or allow_self=True for a "
                "directed element's autapses."
            )
        if allow_self and pre == post and not element.directed and np.any(ii == jj):
            raise CircuitError(
                f"{type(element).__name__} is a two-terminal element: between a node and "
                "itself it carries no current. allow_self is for directed elements (a "
                "chemical synapse's autapse).")
        self.connections[name] = ConnectionSpec(
            name=name, index=len(self.connections), pre=pre, post=post, element=element,
            i=ii, j=jj, values=flat, dense=dense, shape=(n_pre, n_post),
        )
        return name

    def set_output(self, name: str, *, differential: bool = False) -> None:
        """Choose the node group whose voltages the loss reads.

        Parameters
        ----------
        name : str
            A node group.
        differential : bool
            If true, the group holds ``2 K`` nodes and the loss reads the ``K``
            differences ``v[k] - v[K + k]`` (differential output pairs).
        """
        if name not in self.nodes:
            raise CircuitError(
                f"Unknown output group {name!r}; node groups are {sorted(self.nodes)}."
            )
        if differential and self.nodes[name].n % 2:
            raise CircuitError(
                f"A differential output needs an even number of nodes; {name!r} has "
                f"{self.nodes[name].n}."
            )
        self.output = name
        self.differential = bool(differential)

    # ------------------------------------------------------------------ checks
    @property
    def n_outputs(self) -> int:
        """Number of values the loss reads (K)."""
        self._require_output()
        n = self.nodes[self.output].n
        return n // 2 if self.differential else n

    def _require_output(self) -> None:
        if self.output is None:
            raise CircuitError(
                "The circuit has no output; call circuit.set_output('<node group>') before "
                "computing a loss or a gradient."
            )

    def node_offsets(self) -> dict[str, int]:
        """Offset of each node group in the concatenated node vector (one sample)."""
        off, out = 0, {}
        for name, spec in self.nodes.items():
            out[name] = off
            off += spec.n
        return out

    def check_ground(self, values: dict | None = None) -> None:
        """Raise :class:`CircuitError` if a node has no conductive path to ground.

        A path to ground is a leak, a node element that conducts at DC (a current
        source does not), or a connection that conducts at DC (with a non-zero
        parameter) to an input source, possibly through other nodes.

        Parameters
        ----------
        values : dict, optional
            Current parameter values by public name (flat per-synapse arrays for
            connections, shape ``(n,)`` for node parameters); default the
            description's initial values.
        """
        offsets = self.node_offsets()
        n = sum(s.n for s in self.nodes.values())
        parent = np.arange(n + 1)  # index n: ground (and every source)

        def find(a):
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        def union(a, b):
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[ra] = rb

        values = values or {}
        for name, spec in self.nodes.items():
            model = spec.model
            g_leak = values.get(f"{name}.g_leak", spec.values.get("g_leak", model.g_leak))
            g_leak = np.broadcast_to(np.asarray(g_leak, dtype=float), (spec.n,))
            elements = any(el.conducts_at_dc for el in model.shunts)
            for k in range(spec.n):
                if elements or g_leak[k] > 0:
                    union(offsets[name] + k, n)
        for conn in self.connections.values():
            if not conn.element.conducts_at_dc:
                continue
            vals = np.asarray(values[conn.name] if conn.name in values else conn.values)
            vals = vals.ravel() if conn.dense else vals
            live = vals != 0
            jj = offsets[conn.post] + conn.j[live]
            if conn.pre in self.inputs:
                for b in jj:
                    union(int(b), n)
            else:
                ii = offsets[conn.pre] + conn.i[live]
                for a, b in zip(ii, jj, strict=True):
                    union(int(a), int(b))
        ground = find(n)
        for name, spec in self.nodes.items():
            bad = [k for k in range(spec.n) if find(offsets[name] + k) != ground]
            if bad:
                raise CircuitError(
                    f"Node(s) {bad[:10]} of group {name!r} have no path to ground: no leak, "
                    "no element that conducts at DC (a current source does not) and no "
                    "non-zero connection leading to an input. Their voltage is undefined. "
                    "Give the node model a g_leak > 0 or connect the nodes."
                )

    # ------------------------------------------------------------------ build
    def build(self, *, batch: int = 1, target: str | None = None, dt: Quantity = 0.01 * ms,
              method: str = "euler", scheme: str = "euler", threads: int = 0):
        """Build the circuit as Brian2 objects.

        Parameters
        ----------
        batch : int
            Number of copies of the circuit simulated side by side in one run
            (one per sample of a mini-batch); the copies share their parameters.
        target : {"numpy", "cython", "cpp_standalone"}, optional
            Brian2 code-generation target. Default: as Brian2's preferences say
            (``prefs.codegen.target``; ``"auto"`` means numpy, see
            :mod:`ephys_eqprop.targets`). ``"cpp_standalone"``: the objects stay on the
            runtime device (readable and writable between runs as ever), and each
            time-varying run executes as a C++ program generated from them by Brian2's
            standalone device, compiled once per run structure and cached on disk
            (:mod:`ephys_eqprop.standalone`).
        dt : Quantity, second
            Simulation time step.
        method : str
            Brian2 integration method for the node voltages (default ``"euler"``).
        scheme : {"euler", "symplectic"}
            How node voltages and branch states (inductor fluxes) advance together.
            ``"euler"``: every state steps from the values at the start of the step
            (forward Euler of the whole circuit; the adjoint estimator differentiates
            exactly this scheme). ``"symplectic"``: branch states step with the node
            voltages already updated (symplectic Euler: a lossless LC circuit keeps
            its energy bounded instead of gaining ``(ω dt)²`` per step).
        threads : int
            OpenMP threads of the generated programs (``"cpp_standalone"``; 0: none).

        Returns
        -------
        CircuitNetwork
        """
        from .network import CircuitNetwork
        from .targets import resolve_target

        batch = self._check_count(batch, "batch")
        target = resolve_target(target)
        if scheme not in ("euler", "symplectic"):
            raise CircuitError(f"scheme must be 'euler' or 'symplectic'; got {scheme!r}.")
        dt = check_quantity("dt", dt, second, allow_array=False)
        if float(dt) <= 0:
            raise CircuitError(f"dt must be positive; got {dt}.")
        if not self.nodes:
            raise CircuitError("The circuit has no node groups; add some with add_nodes.")
        self.check_ground()
        threads = self._check_count(threads, "threads") if threads != 0 else 0
        return CircuitNetwork(self, batch=batch, target=target, dt=dt, method=method,
                              scheme=scheme, threads=threads)


def layered(n_in: int, hidden, n_out: int, *, neuron: NodeModel | None = None,
            output_neuron: NodeModel | None = None, g_init=None, rng=None,
            doubled_inputs: bool = True, differential_outputs: bool = True,
            element: BranchElement | None = None, bias=None) -> Circuit:
    """A deep resistive network: inputs, hidden layers, outputs, all-to-all between layers.

    Parameters
    ----------
    n_in : int
        Number of input values.
    hidden : sequence of int
        Sizes of the hidden layers (named ``h1``, ``h2``, ...).
    n_out : int
        Number of output values (classes or regression targets).
    neuron : NodeModel, optional
        Node model of the hidden layers (default: ``models.DiodeNeuron()``).
    output_neuron : NodeModel, optional
        Node model of the output layer (default: ``models.CapacitorNode()``).
    g_init : Quantity, siemens, optional
        Scale of the random initial conductances (uniform in ``[0, 2 g_init]``,
        scaled by ``1/sqrt(fan_in)``); default 10 µS.
    rng : numpy.random.Generator or int, optional
        Random source for the initial conductances.
    doubled_inputs : bool
        Inputs as ``(x, -x)`` pairs, so positive conductances can act as signed weights.
    differential_outputs : bool
        Outputs as differential pairs ``v[k] - v[n_out + k]``.
    element : BranchElement, optional
        Synapse kind (default: ``models.Resistor()``).
    bias : Quantity, volt, optional
        If given, a fixed source pair ``"bias"`` at ``±bias`` connects to every
        layer (connections ``"bias->h1"``, ..., ``"bias->y"``): the circuit's
        learnable offsets.

    Returns
    -------
    Circuit
        Input ``"x"``, hidden groups ``"h1"...``, output ``"y"``, connections
        ``"x->h1"``, ..., ``"hL->y"``.
    """
    from brian2 import uS

    from ephys_eqprop import models

    rng = np.random.default_rng(rng)
    g_init = 10 * uS if g_init is None else check_quantity("g_init", g_init, siemens,
                                                           nonnegative=True, allow_array=False)
    neuron = models.DiodeNeuron() if neuron is None else neuron
    output_neuron = models.CapacitorNode() if output_neuron is None else output_neuron
    element = models.Resistor() if element is None else element
    c = Circuit()
    c.add_input("x", n_in, doubled=doubled_inputs)
    if bias is not None:
        c.add_input("bias", 1, doubled=True, value=bias)

    def layer(prev, prev_n, name, n):
        c.add_nodes(name, n, neuron if name != "y" else output_neuron)
        c.connect(prev, name, element, g=rng.uniform(0, 2, (prev_n, n)) * g_init / np.sqrt(prev_n))
        if bias is not None:
            c.connect("bias", name, element,
                      g=rng.uniform(0, 2, (2, n)) * g_init / np.sqrt(prev_n))

    prev, prev_n = "x", (2 * n_in if doubled_inputs else n_in)
    for k, nh in enumerate(hidden, start=1):
        layer(prev, prev_n, f"h{k}", nh)
        prev, prev_n = f"h{k}", nh
    layer(prev, prev_n, "y", 2 * n_out if differential_outputs else n_out)
    c.set_output("y", differential=differential_outputs)
    return c


def _data_array(name: str, vals, n: int, unit, what: str, per: str = "") -> np.ndarray:
    """``x[name]`` as a plain float array of shape (n_samples, n), checked.

    ``unit`` is the Brian2 unit the values must have, ``what`` says so in the error
    (``"voltages (volt), e.g. x*volt"``), ``per`` adds what a column is.
    """
    from brian2 import have_same_dimensions

    if not have_same_dimensions(vals, unit):
        raise TypeError(f"x[{name!r}] must be {what}; got dimensions "
                        f"{get_dimensions(vals) or 'dimensionless'}.")
    arr = np.asarray(vals, dtype=float)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != n:
        raise CircuitError(f"x[{name!r}] must have shape (n_samples, {n}){per}; got "
                           f"{np.shape(vals)}.")
    if arr.shape[0] == 0:
        raise CircuitError(f"x[{name!r}] has no samples (shape {np.shape(vals)}); pass at least "
                           "one row.")
    if not np.all(np.isfinite(arr)):
        raise CircuitError(f"x[{name!r}] contains NaN or infinite values.")
    return arr


def _n_samples(arrays: dict, default: int | None) -> int:
    """The common number of samples (rows) of ``arrays``; ``default`` (or 1) if none."""
    counts = {a.shape[0] for a in arrays.values()}
    if len(counts) > 1:
        raise CircuitError(f"All inputs must have the same number of samples; got {counts}.")
    return counts.pop() if counts else (1 if default is None else default)
