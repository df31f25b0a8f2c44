"""`neurodeploy export DIR --format FMT -o FILE`: write a compiled network in another tool's format.

Registered by neurodeploy/cli.py through EXTRA_COMMANDS ("neurodeploy.backends.export_cli").
Each scheme lists the formats it writes (`Scheme.exporters`: format -> writer(net, path, args),
which raises NeurodeployError for what the format cannot express); this module writes the file
atomically (temp file + rename: no half-written output on any error) and refuses a format the
network's scheme does not have, saying which schemes do.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import NeurodeployError


# format -> (its name in messages, what networks it can hold); each scheme says which formats it writes
# (`Scheme.exporters`) and, where it is worth saying, why it has no such file (`Scheme.why_no_export`)
FORMATS = {"nir": ("NIR", "NIR holds the rate scheme's IF neurons and synapses"),
           "netx": ("NetX", "netx builds only input, conv, flatten and dense layers of CUBA or sigma-delta neurons")}


def export(net, out: Path, fmt: str, args, where: str = "") -> str:
    """Write `net` as `fmt` to `out` atomically through its scheme's writer; returns the summary line."""
    from ..fsutil import atomic_file
    from ..registry import all_schemes, get_scheme
    scheme = get_scheme(net.scheme)
    writer = scheme.exporters.get(fmt)
    title, holds = FORMATS[fmt]
    if writer is None:
        able = [s.name for s in all_schemes() if fmt in s.exporters]
        why = scheme.why_no_export.get(fmt, holds)
        raise NeurodeployError(f"a {net.scheme} network has no {title} equivalent ({why})", where or f"--format {fmt}",
                               f"{title} export supports the schemes {', '.join(able)}: compile with --scheme "
                               f"{' or '.join(able)} to export to {title}")
    with atomic_file(out) as tmp:
        what = writer(net, tmp, args)
    return f"wrote {out} ({what})"


def register(sub) -> None:
    p = sub.add_parser(
        "export", help="write a compiled network in an interchange format (nir, netx)",
        description="Write a compiled network in another tool's format. "
                    "nir: the Neuromorphic Intermediate Representation (HDF5, read with nir.read) for the "
                    "rate scheme: IF neurons, Conv2d/Affine/SumPool2d/Flatten synapses, an integrator readout, "
                    "all in the network's integer units with dt = 1. The bitplane scheme has no NIR "
                    "equivalent. NIR cannot hold the subtractive reset, the initial potential or (unless "
                    "--delays) the one-step synaptic delay; see neurodeploy/schemes/rate/export.py. "
                    "netx: Lava-DL NetX HDF5 of sdnn and cuba networks.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  neurodeploy compile m.onnx --scheme rate --timesteps 16 -o out/\n"
               "  neurodeploy export out/ --format nir -o net.nir")
    p.add_argument("compiled", help="directory written by `neurodeploy compile`")
    p.add_argument("--format", required=True, choices=sorted(FORMATS), help="output format")
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

    if args.format not in FORMATS:   # argparse's choices already refuse it; kept for callers of cmd_export
        raise NeurodeployError(f"unknown export format '{args.format}'", "--format",
                               f"use one of {', '.join(sorted(FORMATS))}")
    from ..outputs import check_output_file
    out = check_output_file(args.output, [args.compiled])     # before the work
    net = load(args.compiled)
    print(export(net, out, args.format, args, str(args.compiled)), file=sys.stderr)
    return 0
