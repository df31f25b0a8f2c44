"""Intermediate representations: the float graph (front ends' output) and the spiking IR."""
