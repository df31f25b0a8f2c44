#!/usr/bin/env python
"""Run a NetX file written by `neurodeploy export --format netx` in Lava, the standard way.

    python examples/run_netx_in_lava.py net.net x.npy [-o y.npy]

This is the script a Loihi 2 user starts from: it needs only lava-nc / lava-dl (plus
neurodeploy's two small host helpers), not the compiled directory.

  1. load the file with lava-dl:  netx.hdf5.Network(net_config=..., input_message_bits=B)
     (and reset_interval / reset_offset for a resetting cuba network); B and the rest of the
     host's side are in the file's neurodeploy_* attributes (neurodeploy.backends.netx_host);
  2. encode the inputs on the host (netx_host.encode: the input quantiser, the shift, Lava's
     (W, H, C) layout) and send them from a RingBuffer into net.inp, or, for an input layer
     with a neuron, set its bias_mant;
  3. run Loihi2SimCfg(select_tag="fixed_pt") for the file's n_steps;
  4. read the output (net.out at the last step for sdnn: the readout's sigma; the last
     layer's v for cuba) and decode it (netx_host.decode: + readout bias, x output scale).

The result equals `neurodeploy simulate DIR --input x.npy` bit for bit (tests/test_netx_import.py).
On a Loihi 2 system (Intel's INRC cloud with lava-loihi) the network part stays as it is; the
run config becomes Loihi2HwCfg and, as in Intel's PilotNet tutorials, lava-loihi's embedded-IO
adapters (lava.proc.embedded_io.spike.PyToN3ConvAdapter before net.inp, NxToPyAdapter after
net.out, lava.proc.embedded_io.state.Read for a voltage) carry the data to and from the chip.
That path is not tested here (no Loihi 2 hardware).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from neurodeploy.backends import netx_host  # noqa: E402


def run(path: str, x: np.ndarray) -> np.ndarray:
    from neurodeploy.lava import netx              # lava-dl's netx, importable on Python 3.11
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.monitor.process import Monitor

    a = netx_host.read(path)
    steps, mode = int(a["n_steps"]), str(a["input_mode"])
    kwargs = {"input_message_bits": int(a["input_message_bits"])}
    if int(a.get("reset_interval", 0)):
        kwargs.update(reset_interval=int(a["reset_interval"]), reset_offset=int(a["reset_offset"]))
    data = netx_host.encode(path, x)
    values = []
    for i in range(len(x)):
        net = netx.hdf5.Network(net_config=path, **kwargs)
        if mode == "bias":
            net.in_layer.neuron.bias_mant.init = data[i]
        else:
            src = Source(data=data[i])
            src.s_out.connect(net.inp)
        sink = Sink(shape=net.out.shape, buffer=steps)
        net.out.connect(sink.a_in)
        mon = None
        if a["output"] == "v":
            mon = Monitor()
            mon.probe(net.out_layer.neuron.v, steps)
        net.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        if a["output"] == "sigma":
            value = sink.data.get()[..., -1]
        elif a["output"] == "v":
            v = np.asarray(mon.get_data()[net.out_layer.neuron.name]["v"]).reshape(steps, -1)
            start = int(a["window_start"])
            value = v[-1] - (v[start - 1] if start else 0)
        else:
            value = sink.data.get().sum(-1)
        net.stop()
        values.append(np.asarray(value, dtype=np.int64).reshape(-1))
    return netx_host.decode(path, np.stack(values))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("net", help="NetX file written by `neurodeploy export --format netx`")
    p.add_argument("x", help="inputs .npy, shaped as for `neurodeploy simulate`")
    p.add_argument("-o", "--output", help="write the outputs here (.npy); never one of the inputs")
    args = p.parse_args()
    # A missing or malformed file is one line and exit 2, as from `neurodeploy` itself: the same
    # checks (the NetX reader, the .npy loader that never unpickles, the output-path check).
    from neurodeploy.arrays import load_npy
    from neurodeploy.errors import NeurodeployError
    from neurodeploy.frontends.netx.reader import read_netx
    from neurodeploy.outputs import check_output_file
    try:
        read_netx(args.net)
        if not netx_host.read(args.net):
            raise NeurodeployError("has no neurodeploy_* attributes (the host's input encoding and output "
                                   "decoding)", args.net, "pass a file written by `neurodeploy export --format netx`")
        out = check_output_file(args.output, inputs=(args.net, args.x)) if args.output else None
        x = load_npy(args.x, "inputs")
        print(netx_host.instructions(args.net))
        y = run(args.net, x)
    except (NeurodeployError, ValueError) as exc:
        line = exc.one_line() if isinstance(exc, NeurodeployError) else str(exc)
        print(f"run_netx_in_lava.py: error: {line}", file=sys.stderr)
        return 2
    if out is not None:
        np.save(out, y)
    print(y)
    return 0


if __name__ == "__main__":
    sys.exit(main())
