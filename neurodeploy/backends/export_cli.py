"""`neurodeploy export DIR --format FMT -o FILE`: write a compiled network in another tool's format.

Registered by neurodeploy/cli.py through EXTRA_COMMANDS ("neurodeploy.backends.export_cli").
Each format is one entry of EXPORTERS: a callable (net, output path, args) -> one-line
summary, which raises NeurodeployError for what the format cannot express and writes its
file atomically (temp file + rename: no half-written output on any error).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import NeurodeployError


def _export_nir(net, out: Path, args) -> str:
    from .nir_export import check_expressible, export_nir, run_steps
    check_expressible(net, str(args.compiled))
    export_nir(net, out, v_init=args.v_init, readout=args.readout, delays=args.delays)
    return (f"wrote {out} (NIR, {len(net.neuron_layers())} layers, run {run_steps(net)} steps of dt=1; "
            f"input = rate-encoder spikes, see neurodeploy.backends.nir_export)")


def _cuba_netx(net, path) -> int:
    from ..schemes.cuba import export_netx
    return export_netx(net, path)


def _sdnn_netx(net, path) -> int:
    from .netx_export import export_netx
    return export_netx(net, path)


# scheme -> writer(graph, path) -> number of NetX layers, for the schemes NetX (Lava-DL) can express
NETX_WRITERS = {"cuba": _cuba_netx, "sdnn": _sdnn_netx}
NETX_NEURONS = {"cuba": "CUBA LIF neurons", "sdnn": "sigma-delta neurons"}


def _export_netx(net, out: Path, args) -> str:
    from ..fsutil import atomic_file
    from .netx_host import instructions
    if net.scheme not in NETX_WRITERS:
        raise NeurodeployError(f"a {net.scheme} network has no NetX equivalent (netx builds only input, conv, "
                               "flatten and dense layers of CUBA or sigma-delta neurons)", str(args.compiled),
                               f"NetX export supports the schemes {', '.join(sorted(NETX_WRITERS))}")
    with atomic_file(out) as tmp:
        n = NETX_WRITERS[net.scheme](net, tmp)
    return (f"wrote {out}: Lava-DL NetX HDF5, {n} layers of {NETX_NEURONS[net.scheme]}; run it with lava-dl:\n"
            + "\n".join("  " + line for line in instructions(out).splitlines()))


# format -> exporter(net, output path, parsed args) -> summary line
EXPORTERS = {"nir": _export_nir, "netx": _export_netx}


def register(sub) -> None:
    p = sub.add_parser(
        "export", help="write a compiled network in an interchange format (nir, netx)",
        description="Write a compiled network in another tool's format. "
                    "nir: the Neuromorphic Intermediate Representation (HDF5, read with nir.read) for the "
                    "rate scheme: IF neurons, Conv2d/Affine/SumPool2d/Flatten synapses, an integrator readout, "
                    "all in the network's integer units with dt = 1. The bitplane scheme has no NIR "
                    "equivalent. NIR cannot hold the subtractive reset, the initial potential or (unless "
                    "--delays) the one-step synaptic delay; see neurodeploy/backends/nir_export.py. "
                    "netx: a Lava-DL NetX HDF5 file for the cuba and sdnn schemes (Loihi 2's stock CUBA LIF and "
                    "sigma-delta neurons), run the standard way: netx.hdf5.Network(net_config=FILE, "
                    "input_message_bits=B), a source on net.inp, the output from net.out (sdnn) or the last "
                    "layer's v (cuba); the file's neurodeploy_* attributes hold B, the input encoding and the "
                    "output decoding, which neurodeploy.backends.netx_host.encode/decode apply. Bit-exact with "
                    "`neurodeploy simulate` in Lava fixed_pt; on a Loihi 2 system (Intel INRC, lava-loihi) the "
                    "same script runs with Loihi2HwCfg. Importing lava.lib.dl.netx on Python 3.11 needs "
                    "`import neurodeploy.backends.lava.compat as c; c.ensure_lava()` first (lava-nc 0.10 "
                    "declares Python < 3.11).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  neurodeploy compile m.onnx --scheme rate --timesteps 16 -o out/\n"
               "  neurodeploy export out/ --format nir -o net.nir\n"
               "  neurodeploy compile m.onnx --scheme sdnn --calibration x.npy -o out_sdnn/\n"
               "  neurodeploy export out_sdnn/ --format netx -o net.net")
    p.add_argument("compiled", help="directory written by `neurodeploy compile`")
    p.add_argument("--format", required=True, choices=sorted(EXPORTERS), help="output format")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="file to write (atomically)")
    p.add_argument("--v-init", choices=("bias", "drop"), default="bias",
                   help="nir: NIR has no initial potential; 'bias' (default) spreads each IF layer's v_init "
                        "over the run as extra per-step bias, 'drop' leaves it out (kept in metadata)")
    p.add_argument("--readout", choices=("integrator", "current"), default="integrator",
                   help="nir: the readout as a nir.I integrator (default) or its input current straight to "
                        "the Output, to be summed over the run (for readers without nir.I: Norse, snnTorch)")
    p.add_argument("--delays", action="store_true",
                   help="nir: add nir.Delay(1) after every spike source (our one-step synaptic delay; "
                        "exact in time, but few readers implement nir.Delay)")
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from ..ir.serialize import load

    exporter = EXPORTERS.get(args.format)
    if exporter is None:   # argparse's choices already refuse it; kept for callers of cmd_export
        raise NeurodeployError(f"unknown export format '{args.format}'", "--format",
                               f"use one of {', '.join(sorted(EXPORTERS))}")
    out = Path(args.output)
    if out.is_dir():
        raise NeurodeployError("is a directory", str(out), "pass a file name, e.g. -o net.nir")
    net = load(args.compiled)
    print(exporter(net, out, args), file=sys.stderr)
    return 0
