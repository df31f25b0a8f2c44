"""`neurodeploy report`: costs of a compiled network (energy, memory, cores, latency) as md/json/html.

Registered by neurodeploy/cli.py through EXTRA_COMMANDS ("neurodeploy.reports.report_cli").
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import NeurodeployError

FORMATS = ("md", "json", "html")


def register(sub) -> None:
    from .energy import available_models
    p = sub.add_parser(
        "report", help="costs of a compiled network: energy, memory, cores, latency (md, json, html)",
        description="Simulate a compiled network on real inputs and report, per layer and in total: neurons, "
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
    p.add_argument("--model", metavar="M.onnx",
                   help="the ONNX model the directory was compiled from: adds the float ANN's accuracy (needs --labels)")
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


def render(d: dict, fmt: str) -> str:
    if fmt == "json":
        from .schema import validate
        validate(d)
        return json.dumps(d, indent=1) + "\n"
    if fmt == "html":
        from .html import to_html
        return to_html(d)
    from .markdown import to_markdown
    return to_markdown(d)


def cmd_report(args) -> int:
    from ..arrays import check_inputs, check_labels, load_npy
    from ..cli import output_count
    from ..compiler import check_same_model
    from ..ir.serialize import load
    from ..sim.core import check_device
    from .costs import cost_report

    if args.model and not args.labels:
        raise NeurodeployError("--model needs --labels (it adds the float ANN's accuracy)", "--model",
                               "pass --labels Y.npy too, or drop --model")
    if args.model and not Path(args.model).is_file():
        raise NeurodeployError("file not found", args.model, "pass the ONNX model the directory was compiled from")
    check_device(args.device)
    output = None
    if args.output is not None:        # before the work: a place we may not write stops here
        from ..outputs import check_output_file
        inputs = [args.compiled, args.input, args.labels, args.model, *(args.energy_model or [])]
        output = check_output_file(args.output, inputs)
    net = load(args.compiled)
    if args.model:
        check_same_model(net, args.model, args.allow_other_model)
    x = check_inputs(load_npy(args.input, "inputs"), net.input.input_shape, args.input)
    y = check_labels(load_npy(args.labels, "labels"), len(x), args.labels,
                     n_classes=output_count(net)) if args.labels else None
    d = cost_report(net, x, args.batch_size, device=args.device, labels=y, model_path=args.model,
                    energy_models=args.energy_model, index_bits=args.index_bits)
    text = render(d, args.format)
    if output is not None:
        from ..fsutil import write_text_atomic
        write_text_atomic(output, text)
        print(f"wrote {args.output} ({args.format}, {d['samples']} samples)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
