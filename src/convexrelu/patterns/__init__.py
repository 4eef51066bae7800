"""Activation patterns: storage, sampling, exact enumeration and counts.

See theory.md, "Notation", "How many patterns" and "Where patterns come from".
"""

from ._sets import ThreeLayerPatterns, TwoLayerPatterns
from .sampling import sample_three_layer, sample_two_layer, three_layer_patterns_of

__all__ = [
    "TwoLayerPatterns",
    "ThreeLayerPatterns",
    "sample_two_layer",
    "sample_three_layer",
    "three_layer_patterns_of",
]
