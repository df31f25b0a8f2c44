"""Lowering: from the float graph to integer spiking layers.

`lower` cuts the float graph at its activations into layers with real-valued synapses;
`quantize` picks each layer's integer formats on the target (weight mantissas and exponents,
threshold unit, bias); `input_quant` gives the network input its quantiser and
`threshold_balance` gives every activation the levels and range of a rate code (both read
calibration data, so they are steps of a scheme's flow rather than function-preserving passes).
"""
