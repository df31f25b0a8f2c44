"""Run a NetX file in Lava (`lava.lib.dl.netx.hdf5.Network`, Loihi2SimCfg fixed_pt), fed as its kind of
input layer asks, and record what every block sends: the reference our simulator is checked against.

How the input goes in, decided by the file's first layer (as Lava-DL's own tests and tutorials
feed such files):
  * no input neuron (a shape-only input layer, or none): the standard way, a RingBuffer source
    connected to `net.inp`, `Network(net_config=..., input_message_bits=B)` with B = 0 for
    binary spikes; the codes (shifted left by the first synapses' weight_exp, SDNN) at every
    step (CUBA constant), one frame per step (CUBA sequence) or once at the first step (SDNN);
  * an input layer with a CUBA neuron (slayer's PilotNet LIF): netx leaves `net.inp`
    unconnected; the codes are that neuron's `bias_mant` (Lava-DL's test_pilotnet_lif);
  * an input layer with an SDNN neuron (a Delta; slayer's PilotNet SDNN): the codes go to the
    Delta's `a_in` at every step (Lava-DL's test_pilotnet_sdnn), which sends their change once.
`reset_interval` / `reset_offset` are passed to netx when the graph's LIF neurons reset (the
graph's scheme says so: `Scheme.netx_files().reset_arguments`).

`run_netx(graph, path, x, n_steps)` runs each sample in a fresh network and returns a `NetxRun`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import NeurodeployError
from ..registry import get_scheme
from . import netx_host
from .netx_host import message_bits


@dataclass
class NetxRun:
    """What Lava's netx network did, per sample, in our layouts ((C, H, W) / (F,))."""
    blocks: list                   # the netx blocks' class names, in order (net.layers)
    sent: list                     # per block: int64 (N, n_steps, *shape), what its `out` port sent each step
    readout_v: np.ndarray | None   # CUBA: int64 (N, n_steps, outputs), the last block's v after each step
    final: list = field(default_factory=list)   # per block: {var: int64 (N, *shape)} after the run
    dense: list = field(default_factory=list)   # per Dense synapse: (weights, weight_exp) as Lava holds them


def to_lava(a: np.ndarray) -> np.ndarray:
    """Our (C, H, W) -> Lava's (W, H, C); (F,) unchanged."""
    return a.transpose(2, 1, 0) if a.ndim == 3 else a


def from_lava(a: np.ndarray, lead: int = 0) -> np.ndarray:
    """Lava's (lead..., W, H, C) -> ours (lead..., C, H, W); (F,) unchanged."""
    if a.ndim - lead == 3:
        return np.moveaxis(a, [lead, lead + 1, lead + 2], [lead + 2, lead + 1, lead])
    return a


def neuron_families(path) -> tuple[str | None, str]:
    """(the neuron family ('CUBA' / 'SDNN') of the file's input layer, or None when layer/0 is not
    an input layer with a neuron; the family of the file's neurons)."""
    from ..frontends.netx.reader import read_netx
    layers = read_netx(path).layers
    head = layers[0]
    family = next(l.neuron.kind for l in layers if l.neuron is not None)
    return (head.neuron.kind if head.type == "input" and head.neuron is not None else None), family


def run_netx(graph, path: str | Path, x: np.ndarray, n_steps: int, final_vars: tuple = ()) -> NetxRun:
    """Run every sample of x (our simulator's inputs for `graph`) through the NetX file at `path`."""
    from .lava.compat import ensure_lava
    from ..sim import core
    ensure_lava()
    from lava.lib.dl import netx
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.monitor.process import Monitor

    enc = graph.input.neuron
    codes = core.input_codes(graph.input, torch.as_tensor(np.array(x, copy=True))).numpy()
    head, family = neuron_families(path)
    kwargs = get_scheme(graph.scheme).netx_files().reset_arguments(graph)
    # neurodeploy's own files say how inputs go in (netx_host.encode: the user's way); another
    # file takes the graph's codes as they are
    host = netx_host.read(path)
    data = netx_host.encode(path, x, n_steps) if host else None
    if head is None:
        kwargs["input_message_bits"] = int(host.get("input_message_bits", message_bits(
            int(enc.code_min), int(enc.code_max))))
    sent, finals, vs, blocks, dense = None, None, [], [], []
    for i in range(len(codes)):
        net = netx.hdf5.Network(net_config=str(path), **kwargs)
        _close_file(net)
        blocks = [type(b).__name__ for b in net.layers]
        src = None
        if head == "CUBA":
            bias = data[i] if data is not None else to_lava(codes[i])
            net.in_layer.neuron.bias_mant.init = bias.astype(np.int32)
        elif head == "SDNN":
            src = Source(data=to_lava(codes[i])[..., None].astype(np.int32))
            src.s_out.connect(net.in_layer.neuron.a_in)
        else:
            frames = data[i] if data is not None else _inp_frames(graph, codes[i], n_steps, tuple(net.inp.shape),
                                                                  once=family == "SDNN")
            if frames.shape[-1] != n_steps:
                raise NeurodeployError(f"the input has {frames.shape[-1]} steps, the run {n_steps}", str(path))
            src = Source(data=frames)
            src.s_out.connect(net.inp)
        sinks = []
        for b in net.layers:
            sinks.append(Sink(shape=b.out.shape, buffer=n_steps))
            b.out.connect(sinks[-1].a_in)
        mon = None
        if family == "CUBA":                       # LIF neurons: the last block's v (the readout)
            mon = Monitor()
            mon.probe(net.out_layer.neuron.v, n_steps)
        try:
            net.run(condition=RunSteps(num_steps=n_steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
            got = [from_lava(np.moveaxis(np.asarray(s.data.get()), -1, 0), 1).astype(np.int64) for s in sinks]
            fin = [{v: from_lava(np.asarray(getattr(b.neuron, v).get())).astype(np.int64)
                    for v in final_vars if hasattr(b.neuron, v)} for b in net.layers]
            if mon is not None:
                v = mon.get_data()[net.out_layer.neuron.name]["v"]
                vs.append(np.asarray(v).astype(np.int64).reshape(n_steps, -1))
            dense = [(b.synapse.weights.get().astype(np.int64), int(b.synapse.proc_params.get("weight_exp", 0)))
                     for b in net.layers if type(getattr(b, "synapse", None)).__name__ == "Dense"]
        except Exception as exc:
            # a failed Lava run leaves its forked processes waiting and stop() would block forever
            kill_runtime(net)
            raise NeurodeployError(f"Lava/NetX run failed ({type(exc).__name__}: {exc})", str(path)) from exc
        net.stop()
        if sent is None:
            sent, finals = [[] for _ in got], [{k: [] for k in f} for f in fin]
        for j, g in enumerate(got):
            sent[j].append(g)
            for k, val in fin[j].items():
                finals[j][k].append(val)
    return NetxRun(blocks, [np.stack(s) for s in sent], np.stack(vs) if vs else None,
                   [{k: np.stack(v) for k, v in f.items()} for f in finals], dense)


def _inp_frames(graph, k: np.ndarray, n_steps: int, inp_shape: tuple, once: bool) -> np.ndarray:
    """RingBuffer data (*net.inp shape, n_steps) for one sample's codes (a file without
    neurodeploy's attributes: the codes as they are): a frame per step (a sequence encoder), the
    frame once at the first step (`once`: sigma-delta neurons take a static input's change) or at
    every step (CUBA neurons take it as a current)."""
    enc = graph.input.neuron

    def lava(frame):
        frame = np.asarray(frame, dtype=np.int64)
        return frame.reshape(-1) if len(inp_shape) == 1 else to_lava(frame)   # flat: PyTorch (C,H,W) order

    if enc.sequence:
        data = np.stack([lava(f) for f in k], axis=-1)
    elif once:                               # sigma-delta: the frame's change, once
        data = np.zeros(tuple(inp_shape) + (n_steps,), dtype=np.int64)
        data[..., 0] = lava(k)
    else:
        data = np.repeat(lava(k)[..., None], n_steps, axis=-1)
    return data.astype(np.int32)


def _close_file(net) -> None:
    """netx reads everything while it builds the network but keeps the HDF5 file open for as long as
    the Network lives (NetDict's h5py.File is never closed): close it (later writes to the path work)."""
    f = getattr(getattr(net, "net_config", None), "f", None)
    if f is not None:
        f.close()


def kill_runtime(proc) -> None:
    """Stop the processes of a Lava run that raised (their runtime would wait for ever)."""
    runtime = getattr(proc, "runtime", None)
    infra = getattr(runtime, "_messaging_infrastructure", None)
    for actor in list(getattr(infra, "actors", [])):
        try:
            if actor.is_alive():
                actor.terminate()
            actor.join(timeout=5)
        except ValueError:                          # already closed
            pass
    try:
        infra._smm.shutdown()
    except Exception:                               # noqa: BLE001 - best effort on a broken runtime
        pass
