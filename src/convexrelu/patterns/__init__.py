"""Activation patterns: storage, sampling, exact enumeration and counts.

See theory.md, "Notation", "How many patterns" and "Where patterns come from".
"""

from ._sets import ThreeLayerPatterns, TwoLayerPatterns
from .sampling import sample_three_layer, sample_two_layer, three_layer_activations, three_layer_patterns_of
from .counts import pattern_counts, three_layer_pattern_bound, two_layer_pattern_bound
from .exact import enumerate_three_layer, enumerate_two_layer

__all__ = [
    "TwoLayerPatterns",
    "ThreeLayerPatterns",
    "sample_two_layer",
    "sample_three_layer",
    "three_layer_activations",
    "three_layer_patterns_of",
    "enumerate_two_layer",
    "enumerate_three_layer",
    "two_layer_pattern_bound",
    "three_layer_pattern_bound",
    "pattern_counts",
]
