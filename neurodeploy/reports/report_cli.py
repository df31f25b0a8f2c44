"""`neurodeploy report`: costs of a compiled network (energy, memory, cores, latency) as md/json/html.

Registered by neurodeploy/cli.py through EXTRA_COMMANDS ("neurodeploy.reports.report_cli").
"""
from __future__ import annotations

import argparse
import sys

from ..errors import NeurodeployError
from . import FORMATS


def register(sub) -> None:
    from .energy import available_models
    p = sub.add_parser(
        "report", help="the verdict, Loihi 2 deployability and costs of a compiled network (md, json, html)",
        description="Simulate a compiled network on real inputs and report, first, with --model and --labels, "
                    "the verdict: the scheme's guarantee and whether it holds, per-layer conversion vs "
                    "quantisation mismatches and the float / quantised ANN / SNN accuracies; then whether every "
                    "layer runs on a Loihi 2 stock neuron model or needs custom microcode; then, per layer and "
                    "in total: membrane headroom, accuracy after each time step, neurons, "
                    "synapses (pooling folded in), synaptic memory as the target stores it, cores (greedy "
                    "allocation), time steps and latency, spikes, synaptic operations, neuron updates, the "
                    "ANN's multiply-accumulates, and energy per inference under each named model in "
                    "targets/energy/ (never mixed; for Loihi 2 there are no public per-operation figures). "
                    "The JSON output follows neurodeploy/reports/schema.json.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  neurodeploy report out/ --input x.npy --labels y.npy --model m.onnx --format html -o report.html")
    p.add_argument("compiled", help="directory written by `neurodeploy compile`")
    p.add_argument("--input", required=True, metavar="X.npy", help="float32 inputs (N, C, H, W) or (N, F)")
    p.add_argument("--labels", metavar="Y.npy", help="integer labels (N,): adds SNN and quantised-ANN accuracy")
    p.add_argument("--model", metavar="MODEL",
                   help="the model (.onnx or .pt2) the directory was compiled from: adds the verdict, the per-layer "
                        "mismatches and the float model's accuracy (needs --labels)")
    p.add_argument("--format", choices=FORMATS, default="md", help="md (default), json or html")
    p.add_argument("-o", "--output", metavar="FILE", help="write here (atomically) instead of standard output")
    p.add_argument("--energy-model", action="append", metavar="NAME",
                   help=f"energy model(s) to use, repeatable (default all: {', '.join(available_models())}) "
                        "or a path to a .toml")
    p.add_argument("--index-bits", type=int, default=0,
                   help="index/format bits stored per synapse beside the weight mantissa, 0..64 (default 0)")
    p.add_argument("--batch-size", type=int, default=256, help="samples per simulation batch (default 256)")
    p.add_argument("--device", default="cpu", help="torch device: cpu (default) or cuda")
    p.add_argument("--allow-other-model", action="store_true",
                   help="accept a --model other than the one compiled (its sha256 differs from the recorded one)")
    p.set_defaults(func=cmd_report)


def cmd_report(args) -> int:
    from ..api import report

    if args.model and not args.labels:      # before anything is read
        raise NeurodeployError("--model needs --labels (the verdict and the float model's accuracy need them)",
                               "--model", "pass --labels Y.npy too, or drop --model")
    d = report(args.compiled, args.input, labels=args.labels, model=args.model, format=args.format,
               output=args.output, energy_model=args.energy_model, index_bits=args.index_bits,
               batch_size=args.batch_size, device=args.device, allow_other_model=args.allow_other_model,
               progress=args.output is not None)
    if args.output:
        print(f"wrote {args.output} ({args.format}, {d['samples']} samples)", file=sys.stderr)
    else:
        from .build import render
        sys.stdout.write(render(d, args.format))
    return 0
