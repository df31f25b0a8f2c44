"""Random `reverb` SpikingGraphs for the simulator and Lava tests (no compiler involved).

    encoder -> conv 3x3 (±1, or 8-bit "real" weights: first_real=True)
            -> [SumPool 2x2 | MaxPool 2x2 | MaxPool 3x3/2 padded as ResNet's stem] + Flatten + Dense (±1)
            -> readout Dense (±1)

Every integer field is drawn so that the layers actually fire and the payloads spread over
their range (some saturate at 2^payload_bits − 1): the membrane scale of a layer is
estimated from its fan-in and its input payload range, and thresholds, out_mant/out_shift
and biases are drawn relative to it.  Branch sums stay below 2^23 (no 24-bit wrap), which
`max_branch_sum` lets a test assert.  start_step = hop depth (1, 2, 3), as the compiler sets it.
With per_neuron=True conv1's v_th_mant and out_mant are drawn per neuron, the full (C, H, W)
layer shape (`schemes.reverb.neurons.neuron_field`'s third form), instead of per channel (C,).
"""
import numpy as np

from neurodeploy.schemes.reverb import neurons as rv
from neurodeploy.ir import synapses as syn
from neurodeploy.ir.spiking import Branch, InputEncoder, Layer, SpikingGraph
from neurodeploy.ir.synapse_ops import abs_bound
from neurodeploy.target import load_target

BIAS_MANT_MAX = load_target("loihi2").bias_mant_max      # the graphs are Loihi 2 networks (loader-valid)


def _signs(rng, shape):
    return np.where(rng.random(shape) < 0.5, -1, 1).astype(np.int64)


def _neuron(rng, channels, scale, payload_bits, t, start):
    """ReverbNeuron whose payloads (v·m >> s) span about the payload range for v ≈ scale.

    channels: an int (per-channel fields (C,)) or a layer shape (per-neuron fields)."""
    pmax = (1 << payload_bits) - 1
    out_shift = int(rng.integers(0, 12))
    # v ≈ scale should give a payload around pmax/3, with a spread of 4x over channels (neurons)
    mant = np.maximum(1, np.round(pmax / 3 * (1 << out_shift) / max(scale, 1.0)
                                  * rng.uniform(0.5, 2.0, channels))).astype(np.int64)
    vth = np.round(rng.uniform(0.0, 0.6, channels) * scale).astype(np.int64)
    vth[rng.random(channels) < 0.2] = 0                          # V_th = 0 (static data sets)
    dv = int(rng.choice([0, 1024, 3072, 4095, int(rng.integers(0, 4096))]))
    return rv.ReverbNeuron(dv=dv, v_th_mant=vth, out_mant=mant, out_shift=out_shift,
                           payload_bits=payload_bits, timesteps=t, start_step=start)


def _bias(rng, half: int, n: int, exp: int) -> dict:
    """A bias drawn in ±(half + 1) units of 2^exp, stored as Loihi 2 stores it: the exponent grows
    (the mantissa halves) until the mantissa fits its signed 13 bits."""
    mant = rng.integers(-half - 1, half + 2, n).astype(np.int64)
    while np.max(np.abs(mant)) > BIAS_MANT_MAX:
        mant, exp = mant >> 1, exp + 1
    return {"bias_mant": mant, "bias_exp": exp}


def _scale(ops, in_shape, in_max, weight_exp):
    """Typical |membrane| contribution: a third of the worst-case per-step branch sum."""
    return float(np.mean(abs_bound(ops, in_shape, in_max))) * (1 << weight_exp) / 3.0


def random_graph(seed: int = 0, t: int = 4, payload_bits: int = 8, pool: str = "sum",
                 first_real: bool = False, in_shape=(2, 6, 6), c1: int = 3, hidden: int = 7,
                 outputs: int = 4, code_max: int = 255, per_neuron: bool = False) -> SpikingGraph:
    """A random reverb network (see the module docstring).  pool: "sum", "max" or "max_padded"
    (3x3 windows, stride 2, padding 1: h x w -> ceil(h/2) x ceil(w/2))."""
    rng = np.random.default_rng(seed)
    c0, h, w = in_shape
    enc = InputEncoder("input", tuple(in_shape), in_scale=np.asarray(float(code_max)), offset=np.asarray(0.0),
                       value_step=np.asarray(1.0 / code_max),
                       neuron=rv.ReverbEncoder(code_max=int(code_max), timesteps=t))
    # conv: ±1, or 8-bit signed mantissas for the real-valued first layer variant
    wshape = (c1, c0, 3, 3)
    w1 = rng.integers(-127, 128, wshape).astype(np.int64) if first_real else _signs(rng, wshape)
    e1 = int(rng.integers(0, 2))
    ops1 = [syn.Conv(w1, stride=(1, 1), padding=(1, 1))]
    s1 = _scale(ops1, in_shape, code_max, e1)
    l1 = Layer("conv1", (c1, h, w), [Branch("input", ops1, e1)],
               **_bias(rng, int(s1 / 4), c1, 0),
               neuron=_neuron(rng, (c1, h, w) if per_neuron else c1, s1, payload_bits, t, 1), float_node="conv1")
    pmax = (1 << payload_bits) - 1
    pool_op = {"sum": syn.SumPool((2, 2), (2, 2)), "max": syn.MaxPool((2, 2), (2, 2)),
               "max_padded": syn.MaxPool((3, 3), (2, 2), (1, 1, 1, 1))}[pool]
    flat = c1 * ((h + 1) // 2) * ((w + 1) // 2) if pool == "max_padded" else c1 * (h // 2) * (w // 2)
    w2 = _signs(rng, (hidden, flat))
    ops2 = [pool_op, syn.Flatten(), syn.Dense(w2)]
    # payloads are sparse-ish: half the typical (a sixth of the worst case) is a membrane step
    s2 = _scale(ops2, (c1, h, w), pmax, 0) / 2
    l2 = Layer("fc1", (hidden,), [Branch("conv1", ops2, 0)],
               **_bias(rng, int(s2 / 8), hidden, 1),
               neuron=_neuron(rng, hidden, s2, payload_bits, t, 2), float_node="fc1")
    w3 = _signs(rng, (outputs, hidden))
    e3 = int(rng.integers(0, 3))
    l3 = Layer("readout", (outputs,), [Branch("fc1", [syn.Dense(w3)], e3)],
               **_bias(rng, 49, outputs, 2),
               neuron=rv.ReverbReadout(output_scale=1.0 / (t * 64.0), timesteps=t, start_step=3),
               float_node="readout")
    return SpikingGraph("reverb", "loihi2", [enc, l1, l2, l3],
                        meta={"timesteps": t, "payload_bits": payload_bits})


def random_inputs(graph: SpikingGraph, n: int, seed: int = 0) -> np.ndarray:
    """Inputs in [−0.1, 1.1): codes spread over 0..code_max, a few clipped at both ends."""
    rng = np.random.default_rng(seed + 1000)
    return rng.uniform(-0.1, 1.1, (n,) + tuple(graph.input.shape)).astype(np.float32)


def max_branch_sum(graph: SpikingGraph) -> float:
    """Worst-case |branch sum| over all branches (static bound, payloads at their maximum)."""
    pmax = {graph.input.name: graph.input.neuron.code_max}
    pmax.update({l.name: l.neuron.max_payload for l in graph.neuron_layers() if isinstance(l.neuron, rv.ReverbNeuron)})
    shapes = {l.name: tuple(l.shape) for l in graph.layers}
    worst = 0.0
    for layer in graph.neuron_layers():
        for b in layer.branches:
            worst = max(worst, float(np.max(abs_bound(b.ops, shapes[b.source], pmax[b.source]))) * (1 << b.weight_exp))
    return worst
