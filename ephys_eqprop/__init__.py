"""ephys_eqprop: neural networks as electrical circuits in Brian2, trained with local
gradient estimators of the equilibrium-propagation family."""

from . import datasets, dynamics, learning, losses, models, netlist
from .circuit import Circuit, CircuitError, layered
from .dynamics import TimeSeries
from .estimators import (
    EP,
    Adjoint,
    Estimator,
    ExactSteadyState,
    FiniteDifference,
    GradientInfo,
    LagrangianEP,
    SymmetricEP,
)
from .learning import SGD, Adam, Bounds, History, Momentum, Trainer
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
    "Momentum",
    "SGD",
    "Settle",
    "SettleReport",
    "SettleWarning",
    "SteadyState",
    "SymmetricEP",
    "TimeSeries",
    "Trainer",
    "datasets",
    "dynamics",
    "exact_gradient",
    "layered",
    "learning",
    "losses",
    "models",
    "netlist",
]
