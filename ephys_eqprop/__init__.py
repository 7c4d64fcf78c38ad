"""ephys_eqprop: neural networks as electrical circuits in Brian2, trained with local
gradient estimators of the equilibrium-propagation family."""

from . import (
    datasets,
    dynamics,
    elements,
    estimators,
    learning,
    losses,
    models,
    monitors,
    netlist,
    standalone,
    targets,
)
from .circuit import Circuit, ParameterSpec, layered
from .dynamics import TimeSeries
from .errors import CircuitError, StaticPhaseWarning
from .estimators import (
    EP,
    Adjoint,
    Estimator,
    ExactSteadyState,
    FiniteDifference,
    GradientInfo,
    LagrangianEP,
    StaticEstimator,
    SymmetricEP,
    TimeVaryingEstimator,
)
from .learning import SGD, Adam, Bounds, History, Momentum, Trainer
from .monitors import MonitorRecord, SynapticMonitor
from .network import CircuitNetwork
from .phases import Settle, SettleReport, SettleWarning
from .steady_state import SteadyState, exact_gradient

__version__ = "0.1.0"

__all__ = [
    "Adam",
    "Adjoint",
    "Bounds",
    "Circuit",
    "CircuitError",
    "CircuitNetwork",
    "EP",
    "Estimator",
    "ExactSteadyState",
    "FiniteDifference",
    "GradientInfo",
    "History",
    "LagrangianEP",
    "MonitorRecord",
    "Momentum",
    "ParameterSpec",
    "SGD",
    "Settle",
    "SettleReport",
    "SettleWarning",
    "StaticEstimator",
    "StaticPhaseWarning",
    "SteadyState",
    "SymmetricEP",
    "SynapticMonitor",
    "TimeSeries",
    "TimeVaryingEstimator",
    "Trainer",
    "datasets",
    "dynamics",
    "elements",
    "estimators",
    "exact_gradient",
    "layered",
    "learning",
    "losses",
    "models",
    "monitors",
    "netlist",
    "standalone",
    "targets",
]
