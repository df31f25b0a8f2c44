"""Simulators: the vectorised fixed-point SNN simulator and the integer ANN reference."""
