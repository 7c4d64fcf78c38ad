"""ephys_eqprop: neural networks as electrical circuits in Brian2, trained with local
gradient estimators of the equilibrium-propagation family."""

from . import datasets, learning, losses, models, netlist
from .circuit import Circuit, CircuitError, layered
from .estimators import EP, Estimator, ExactSteadyState, FiniteDifference, GradientInfo, SymmetricEP
from .learning import SGD, Adam, Bounds, History, Momentum, Trainer
from .network import CircuitNetwork
from .phases import Settle, SettleReport, SettleWarning
from .steady_state import SteadyState, exact_gradient

__version__ = "0.1.0"

__all__ = [
    "Adam",
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
    "Momentum",
    "SGD",
    "Settle",
    "SettleReport",
    "SettleWarning",
    "SteadyState",
    "SymmetricEP",
    "Trainer",
    "datasets",
    "exact_gradient",
    "layered",
    "learning",
    "losses",
    "models",
    "netlist",
]
