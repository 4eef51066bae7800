"""convexrelu: train ReLU networks to global optimality through their convex programs.

Implements Ergen & Pilanci, "Global Optimality Beyond Two Layers: Training Deep ReLU
Networks via Convex Programs" (ICML 2021); formulas in ``theory.md``.
"""

from .losses import LogisticLoss, SoftmaxLoss, SquaredLoss, get_loss
from .networks import ThreeLayerNetwork, TwoLayerNetwork
from .operators import BlockOperator
from .patterns import ThreeLayerPatterns, TwoLayerPatterns, sample_three_layer, sample_two_layer
from .programs import ConvexProgram, GatedReLUProgram, ThreeLayerReLUProgram, TwoLayerReLUProgram
from .regularizers import GroupL1
from .solvers import ConvergenceWarning, CVXPYSolver, Solution, Solver, SolverError
from .search import AtomSearchResult, exact_atom_max, search_atoms
from .strategies import StrategyResult, run_strategy
from .certificates import Certificate, certificate
from .estimators import ConvexReLUClassifier, ConvexReLURegressor
from .io import load, save

__version__ = "0.1.0"

__all__ = [
    "SquaredLoss", "LogisticLoss", "SoftmaxLoss", "get_loss",
    "TwoLayerNetwork", "ThreeLayerNetwork",
    "BlockOperator", "GroupL1",
    "TwoLayerPatterns", "ThreeLayerPatterns", "sample_two_layer", "sample_three_layer",
    "ConvexProgram", "TwoLayerReLUProgram", "GatedReLUProgram", "ThreeLayerReLUProgram",
    "Solution", "Solver", "SolverError", "ConvergenceWarning", "CVXPYSolver",
    "search_atoms", "exact_atom_max", "AtomSearchResult", "run_strategy", "StrategyResult", "certificate", "Certificate",
    "ConvexReLURegressor", "ConvexReLUClassifier", "save", "load",
]
