"""The interface every coding scheme implements, and the options it is configured with.

A scheme is one package, `neurodeploy/schemes/<name>/`, registered by name in
`neurodeploy/registry.py`:

    __init__.py   SCHEME = <Name>(): the Scheme subclass below, light to import (its methods
                  import the heavy modules when they are called)
    options.py    <Name>Options(CommonOptions): the options it takes
    neurons.py    its IR neurons: dataclasses with integer fields, subclasses of ir.neurons.Neuron
    compile.py    its flow: float passes -> lower -> quantise to the target -> SpikingGraph
    kernel.py     its simulator kernel: run_batch(prep, x, record_codes) -> sim.core.BatchResult
    lava/         its Lava processes (a subpackage with absolute imports only: Lava's compiler
                  re-executes every module in the directory of a Process); imported lazily
    costs.py, export.py, front.py, ...   what else it has (spike model of the cost report,
                  exports to other formats, the PyTorch front end of its trained models)

Everything outside a scheme's package (cli, api, verify, reports, exports, the simulator's
dispatch) reaches it only through `registry.get_scheme(name)` and the attributes and methods of
`Scheme` below: it never compares scheme names or tests neuron types.  A new scheme is one
package plus one line in `registry.BUILTIN` (or `registry.register(SCHEME)` at run time).

Options.  Each scheme has one dataclass of options, a subclass of `CommonOptions` (calibration,
timesteps, input_bits, chips); every field is made with `option()`, whose metadata (help text,
choices, range, metavar) is what the command line's flags are built from (`cli.py`) and what
`Scheme.options` checks.  An option that the chosen scheme does not have is refused, on the
command line and in `neurodeploy.compile(..., **options)` alike.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import NeurodeployError
from ..limits import MAX_CHIPS, MAX_TIMESTEPS


def option(default=None, help: str = "", *, type=None, choices=None, range=None, metavar=None, cli: str = ""):
    """A field of an options dataclass with what the command line and the checks need.

    type: the parser of a command-line value (int, float, str; omitted for flags: bool fields
    become `--flag`); choices: the values the command line accepts; range (lo, hi) (None = an
    unbounded side): checked by `Scheme.options`; cli="npy": the flag takes a .npy path whose
    array is the value."""
    return field(default=default, metadata={"help": help, "type": type, "choices": choices, "range": range,
                                            "metavar": metavar, "cli": cli})


AUTO_CHIPS = "auto"


def chips_count(text):
    """A --chips value: a whole number of chips, or "auto" (as many as the network needs)."""
    if text == AUTO_CHIPS or isinstance(text, (int, np.integer)):
        return text
    try:
        return int(text)
    except (TypeError, ValueError):
        import argparse
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: pass a whole number of chips or 'auto'") from None


def percentile_option():
    """The threshold-balancing percentile (`lowering.threshold_balance`), for schemes that balance
    the ranges of ReLU activations from calibration data."""
    return option(99.9, "threshold balancing sets each ReLU's range λ to this percentile of its calibration "
                        "inputs (default 99.9)", type=float, range=(0, 100), metavar="P")


@dataclass
class CommonOptions:
    """Options every scheme takes (those a scheme does not use, it refuses in __post_init__)."""
    calibration: object = option(None, "float32 samples shaped like the input, batch first; sets the input "
                                       "quantiser's range when the model does not start with one (and the "
                                       "activation ranges of schemes that calibrate them)",
                                 metavar="X.npy", cli="npy")
    timesteps: int | None = option(None, "time steps, where the scheme lets you choose (omitted: the scheme's own "
                                         f"choice; at most {MAX_TIMESTEPS})", type=int, range=(1, MAX_TIMESTEPS),
                                   metavar="T")
    input_bits: int = option(8, "width of the input quantiser inserted when the model has none (default 8)",
                             type=int, range=(1, 16), metavar="BITS")
    chips: int | str = option(1, "chips available (default 1); compile fails, naming the largest layers, when the "
                                 "network needs more cores than these chips have; 'auto': as many chips as the "
                                 "network needs, recorded in the summary", type=chips_count, range=(1, MAX_CHIPS),
                              metavar="N|auto")


def option_fields(options_cls) -> list:
    """The dataclass fields of an options class, common ones first."""
    return list(dataclasses.fields(options_cls))


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _kind(f):
    """What an option holds: int, float, str, bool (a flag) or "npy" (an array of samples)."""
    meta = f.metadata
    if meta.get("cli") == "npy":
        return "npy"
    if meta.get("type") is None and isinstance(f.default, bool):
        return bool
    return meta.get("type")


def check_option(name: str, value, f) -> None:
    """Refuse a value of the wrong type, outside the field's choices or range, or not finite
    (NeurodeployError naming the flag): the command line and `neurodeploy.compile(**options)`
    go through here alike.  Arrays (--calibration) are checked by `arrays.check_calibration`."""
    meta = f.metadata
    if value is None:
        return
    kind = _kind(f)
    where = flag(name)
    if kind is chips_count:           # a number of chips, or "auto"
        if value == AUTO_CHIPS:
            return
        kind = int
    if kind is int and (not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_))):
        raise NeurodeployError(f"{name}={value!r} is not an integer", where, "pass a whole number")
    if kind is float:
        if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, (bool, np.bool_)):
            raise NeurodeployError(f"{name}={value!r} is not a number", where, "pass a number")
        if not math.isfinite(float(value)):
            raise NeurodeployError(f"{name}={value} is not a finite number", where, "pass a finite number")
    if kind is bool and not isinstance(value, (bool, np.bool_)):
        raise NeurodeployError(f"{name}={value!r} is not true or false", where, "pass True or False")
    if kind is str and not isinstance(value, str):
        raise NeurodeployError(f"{name}={value!r} is not a string", where, "pass one of the documented values")
    if kind == "npy":
        from ..arrays import check_calibration
        check_calibration(value, where)
        return
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise NeurodeployError(f"{name}={value!r} is not one of {', '.join(map(str, choices))}", where,
                               f"use one of {', '.join(map(str, choices))}")
    rng = meta.get("range")
    if rng is not None:
        lo, hi = rng
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            span = f"{lo if lo is not None else ''}..{hi if hi is not None else ''}"
            raise NeurodeployError(f"{name}={value} out of range", where, f"use {span}")


@dataclass
class CompileOptions:
    """Every option of every built-in scheme in one flat class (the form before per-scheme options).

    Still accepted wherever options are (`compiler.compile_model`, `Scheme.compile`): each scheme
    takes the fields it has and refuses a field it does not have when it is not at its default
    here.  New code passes the scheme's own options class (`get_scheme(name).Options`) or a dict."""
    calibration: object = None
    timesteps: int | None = None
    input_bits: int = 8
    lossy: bool = False
    reset: str = "subtract"
    percentile: float = 99.9
    coding_steps: int | None = None
    silent_steps: int | None = None
    beta: int = 2
    full_threshold: bool = False
    state_bound: str | None = None
    state_margin: float = 4.0
    chips: int | str = 1
    payload_bits: int = 16
    nir_from: str | None = None
    nir_dt: float | None = None
    nir_reset: str | None = None
    nir_decay: str | None = None
    nir_input_gain: str | None = None
    nir_integrator_gain: str | None = None
    nir_current_input: str | None = None
    nir_fire_on: str | None = None


class Scheme:
    """A coding scheme: an instance of a subclass, registered by name (`neurodeploy.registry`).

    Attributes a scheme sets:
        name            its registry name (`--scheme NAME`)
        title           one line for `--scheme`'s help
        Options         its options dataclass (a `CommonOptions` subclass)
        neuron_types    its IR neuron classes (the serialiser reads and writes these)
        passes          float-graph passes that keep the model's function (fold BN, fuse quantisers,
                        ...), in order: its flow starts with them and `verify` re-runs them on the
                        float model to compare layer by layer
        guarantee       what `verify` checks, in words
        exact           does it promise equality with the quantised ANN on every layer by
                        construction?  (`equal_layers` says on which layers it promises it;
                        `verdict` turns verify's counts into EXACT / NOT EXACT / APPROXIMATE)
        ann_reference   False for trained SNNs (cuba, reverb): verify compares float SNN and
                        fixed-point SNN instead of a quantised ANN
        timesteps_help  what --timesteps means for it ("" when it takes none)
        exporters       format -> writer(net, path, args) -> a few words on what was written
                        ("netx", "nir"; `neurodeploy export`)
        why_no_export   format -> why this scheme's networks have no such file (for the error)
        compare_sweep   (flag, help, default) of the list `neurodeploy compare` sweeps, or None
        netx_neurons    the Lava-DL NetX neuron types (a NetX file's `neuron/type`) whose networks
                        import as this scheme's (`frontends.netx`; its `netx_files` hook builds them)
        engines         name -> description of its simulator kernels (`simulate --engine`, `sim.engine.prepare`):
                        "neurodeploy" (the default) and any bit-identical alternative it keeps

    Methods: `build` (the compile flow; `compile` checks the options first), `run_batch` (the
    simulator kernel), the guarantee's (`equal_layers`, `guarantee_holds`, `mismatch_note`,
    `verdict`), and the optional hooks below (`lava`, `simulate_lava`, the cost report's
    spike model, `summary_lines`, `lava_period`, `compare_configs`, `front_end`,
    `model_front_ends`, `float_snn_outputs`, `netx_files`), each with the default a scheme without that feature gets.
    """

    name: str = ""
    title: str = ""
    Options: type = CommonOptions
    neuron_types: tuple = ()
    passes: list[str] = []
    guarantee: str = ""
    exact: bool = True
    ann_reference: bool = True
    timesteps_help: str = ""
    exporters: dict = {}
    why_no_export: dict = {}
    compare_sweep: tuple | None = None
    netx_neurons: tuple = ()
    engines: dict = {"neurodeploy": "the scheme's simulator kernel"}   # name -> what it does; the first
                                                                  # is the default (`--engine`)

    # --- options ----------------------------------------------------------------------------
    def options(self, given=None):
        """This scheme's options from None (defaults), an instance of `self.Options`, a dict of
        option values (the command line's given flags, `neurodeploy.compile`'s keyword arguments)
        or a flat `CompileOptions`.  Refuses names no scheme knows and options of other schemes."""
        if isinstance(given, self.Options):
            opts = given
        else:
            opts = self.Options(**self._option_values(given))
        for f in option_fields(self.Options):
            check_option(f.name, getattr(opts, f.name), f)
        return opts

    def used_options(self, options, net) -> dict:
        """What meta["options"] records of this scheme's options: each option it has, with the
        value it used (a default resolved by the flow, e.g. rate's T = 32 for an omitted
        --timesteps, taken from `resolved_options`); calibration as its sample count."""
        used = {}
        # a front end's own options (--nir-*) mean something only for its models: recorded where given
        front_only = {name for fe in self.model_front_ends() for name in fe.OPTIONS}
        for f in option_fields(self.Options):
            if f.name in front_only and getattr(options, f.name) is None:
                continue
            if f.name == "calibration":
                used["calibration_samples"] = None if options.calibration is None else int(len(options.calibration))
            elif f.name not in self.unused_options:
                used[f.name] = getattr(options, f.name)
        used.update(self.resolved_options(options, net))
        return used

    unused_options: tuple = ()      # options of CommonOptions this scheme refuses (never records)

    def resolved_options(self, options, net) -> dict:
        """Values of options the flow chose itself (an omitted --timesteps, ...), read from the
        compiled `net`; {} where every option is used as given."""
        return {}

    def _option_values(self, given) -> dict:
        mine = {f.name for f in option_fields(self.Options)}
        if given is None:
            return {}
        if isinstance(given, CompileOptions):
            defaults = CompileOptions()
            values = {f.name: getattr(given, f.name) for f in dataclasses.fields(given)}
            used = {k: v for k, v in values.items() if k in mine}
            foreign = [k for k, v in values.items() if k not in mine and _differs(v, getattr(defaults, k))]
        elif isinstance(given, dict):
            used = {k: v for k, v in given.items() if k in mine}
            foreign = [k for k in given if k not in mine]
        elif dataclasses.is_dataclass(given):        # another scheme's options class
            used = {f.name: getattr(given, f.name) for f in dataclasses.fields(given) if f.name in mine}
            foreign = [f.name for f in dataclasses.fields(given) if f.name not in mine
                       and _differs(getattr(given, f.name), f.default)]
        else:
            raise NeurodeployError(f"options must be a dict or {self.Options.__name__}, not {type(given).__name__}",
                                   f"scheme '{self.name}'")
        if foreign:
            self._refuse(foreign)
        return used

    def _refuse(self, names: list[str]) -> None:
        from ..registry import all_schemes
        owners = {n: [s.name for s in all_schemes() if n in {f.name for f in option_fields(s.Options)}]
                  for n in names}
        unknown = [n for n in names if not owners[n]]
        mine = ", ".join(flag(f.name) for f in option_fields(self.Options))
        if unknown:
            raise NeurodeployError(f"unknown option(s) {', '.join(unknown)}", f"scheme '{self.name}'",
                                   f"the {self.name} scheme's options are {mine}")
        n = names[0]
        raise NeurodeployError(f"the {self.name} scheme has no option {n} ({flag(n)}; an option of "
                               f"{', '.join(owners[n])})", flag(n), f"drop it; {self.name}'s options are {mine}")

    # --- compile ----------------------------------------------------------------------------
    def compile(self, graph, target, options=None):
        """Float graph -> SpikingGraph for `target` (a `target.Target`), with this scheme's options."""
        return self.build(graph, target, self.options(options))

    def build(self, graph, target, options):
        """The scheme's flow on checked options (`compile.py` of its package)."""
        raise NotImplementedError

    # --- the guarantee, and how verify's counts decide it -----------------------------------------
    def equal_layers(self, graph) -> set[str]:
        """The layers whose conversion mismatches (SNN codes vs the quantised ANN's, the readout's
        state included) the guarantee says are 0; empty for a scheme that promises no equality.
        Default: every layer of an `exact` scheme."""
        return {l.name for l in graph.layers} if self.exact else set()

    def guarantee_holds(self, graph, layer_mismatches: dict[str, int]) -> bool:
        """Does verify's per-layer result (layer -> conversion mismatches) keep the guarantee?
        Zero mismatches on every layer of `equal_layers`."""
        return not any(layer_mismatches.get(name, 0) for name in self.equal_layers(graph))

    def mismatch_note(self, graph, wrong: dict[str, int]) -> str:
        """Why layers with conversion mismatches (`wrong`: layer -> count) have them, where the
        scheme knows ("" otherwise); verify adds it to its verdict."""
        return ""

    def verdict(self, graph, layer_mismatches: dict[str, int], elements: dict[str, int],
                lossy: dict | None = None) -> "Verdict":
        """verify's verdict from the counts it prints (layer -> conversion mismatches, layer ->
        values compared), for every scheme the same rule: EXACT when every count is 0; otherwise
        NOT EXACT when the scheme promises equality on some layer (`equal_layers`), APPROXIMATE
        when it promises none.  `holds` (verify's exit status 0) is `guarantee_holds`; a --lossy
        network never holds."""
        wrong = {k: int(v) for k, v in layer_mismatches.items() if v}
        total = sum(int(elements.get(k, 0)) for k in layer_mismatches)
        n_wrong = sum(wrong.values())
        where = ", ".join(f"{k} {v:,}/{int(elements.get(k, 0)):,}" for k, v in wrong.items())
        counted = f"{n_wrong:,} of {total:,} values ({_percent(n_wrong, total)}) differ from the quantised ANN ({where})"
        if lossy:
            return Verdict("NOT EXACT", False,
                           f"compiled with --lossy --timesteps {lossy['timesteps']} (exactness needs "
                           f"{lossy['exact_timesteps']}): not error-free by construction; "
                           + (counted if wrong else "no mismatch against the exact quantised ANN on these inputs"))
        holds = bool(self.guarantee_holds(graph, layer_mismatches))
        if not wrong:
            return Verdict("EXACT", holds, f"0 conversion mismatches on all {len(layer_mismatches)} layers "
                                           f"({total:,} values): the SNN equals the quantised ANN on these inputs")
        note = self.mismatch_note(graph, wrong)
        scope = self.equal_layers(graph)
        if not scope:
            return Verdict("APPROXIMATE", holds, f"{counted}; the {self.name} scheme promises no equality"
                           + (f"; {note}" if note else ""))
        outside = [k for k in wrong if k not in scope]
        if outside and holds:
            note = (f"the guarantee covers only {', '.join(sorted(scope))}, where every count is 0"
                    + (f"; {note}" if note else ""))
        return Verdict("NOT EXACT", holds, counted + (f"; {note}" if note else ""))

    # --- simulation -------------------------------------------------------------------------
    def run_batch(self, prep, x, record_codes: bool = True):
        """The simulator kernel: one batch of a prepared network -> `sim.core.BatchResult`; `prep.engine`
        names which of `engines` to run."""
        raise NotImplementedError(f"the {self.name} scheme has no simulator kernel")

    def run_probed(self, prep, x, probe):
        """One batch through the kernel with a `sim.core.Probe` for it to fill (membrane peaks, the
        readout after each step); a scheme whose kernel records nothing leaves it empty."""
        return self.run_batch(prep, x, record_codes=False)

    def lava(self):
        """The scheme's Lava back end (its `lava` package: `build`, `run_lava`, ...), imported now."""
        raise NeurodeployError(f"no Lava back end for the {self.name} scheme", "neurodeploy.backends.lava",
                               self.no_lava_hint)

    def simulate_lava(self, net, x):
        """Lava's own fixed-point run of the emitted processes, for `neurodeploy simulate --engine lava`:
        (outputs (N, outputs), spikes per layer)."""
        raise NeurodeployError(f"no Lava processes for the {self.name} scheme", "--engine lava",
                               self.no_lava_hint)

    no_lava_hint: str = "use the neurodeploy engine"

    @property
    def has_lava(self) -> bool:
        return type(self).simulate_lava is not Scheme.simulate_lava

    # --- the cost report's spike model -----------------------------------------------------------
    phased: bool = False    # layers accumulate while their sources emit, then emit their own n_steps planes
                            # (layer by layer); otherwise every layer is active in every step

    def spike_trains(self, neuron, codes):
        """A layer's 0/1 spikes (N, T, *shape) rebuilt from the simulator's decoded codes, where the
        neuron model makes that exact; None otherwise."""
        return None

    def spike_counts(self, neuron, codes, trains):
        """Spikes per neuron (N, neurons): summed from `trains` where there are any; None where the
        codes do not tell (a scheme whose codes are spike counts returns them)."""
        return None if trains is None else trains.reshape(codes.shape[0], trains.shape[1], -1).sum(1)

    def pooled_spike_counts(self, trains, maxpool):
        """Spikes per neuron (N, neurons) that pass a branch's leading max pool of the source's
        `trains`; None where the scheme cannot tell."""
        return None

    # --- the chip ---------------------------------------------------------------------------
    loihi2_route: str = ""  # how a Loihi 2 user runs a network of this scheme whose layers are all stock
    stock_condition: str = ""   # the options under which its layers are stock ("" = always, given a route)
    stock_hint: str = ""    # what to change for stock neurons when a network of this scheme needs microcode

    def chip_path(self, layer):
        """How Loihi 2 runs this layer (an `ir.neurons.ChipPath`): its neuron's own answer
        (`Neuron.loihi2`); a scheme whose layers use a shared neuron class in its own way (the
        bitplane readout's doubling accumulation) overrides this."""
        return layer.neuron.loihi2()

    # --- reports ----------------------------------------------------------------------------
    def summary_lines(self, net) -> list[str]:
        """What the compile summary should say about this scheme's choices (Markdown bullets)."""
        return []

    def lava_period(self, net) -> int | None:
        """Steps per sample on Loihi 2 through the Lava back-end's schedule, where it has one."""
        return None

    def compare_configs(self, sweep: list | None) -> list[dict]:
        """`neurodeploy compare`'s configurations of this scheme: [{"name", "options"}]."""
        return [{"name": self.name, "options": {}}]

    def front_end(self):
        """The PyTorch front end of the trained SNNs this scheme compiles (a module with `claims(model)`,
        `per_step_model(model)`, `load_model(model, example_input)`; `frontends.per_step`), or None."""
        return None

    def netx_files(self):
        """The scheme's side of Lava-DL NetX files (its `netx` module: the neurons of an imported
        file, how long to run it, what to compare with Lava), imported now; schemes whose
        `netx_neurons` is empty have none."""
        raise NeurodeployError(f"the {self.name} scheme cannot hold a Lava-DL NetX network", "neurodeploy.frontends.netx",
                               "NetX files hold CUBA LIF or sigma-delta networks (schemes cuba, sdnn)")

    def model_front_ends(self) -> list:
        """Front ends of model formats that this scheme compiles and the common ones (.onnx, .pt2,
        nn.Module) do not cover: modules with `DESCRIPTION`, `SUFFIXES`, `OPTIONS` (the names of
        the scheme's options they read), `claims(model)` (a path or an in-memory model),
        `load(model, options) -> (FloatGraph, meta)` (meta joins the network's), `float_outputs(model,
        net, x, timesteps, batch_size)` (for verify) and `summary_lines(net)`; see `frontends.nir`
        (cuba: NIR graphs).  The compile step (`compiler.model_front_end`) reads a model with the
        chosen scheme's front end that claims it, and names this scheme when another is chosen."""
        return []

    def model_front_end(self, model):
        """The one of `model_front_ends()` that reads `model`, or None."""
        return next((fe for fe in self.model_front_ends() if fe.claims(model)), None)

    def float_snn_outputs(self, model, graph, x, timesteps: int, batch_size: int):
        """The float SNN's outputs from a saved model file, or a model one of `model_front_ends()`
        reads (trained-SNN schemes that can run one): float (N, outputs)."""
        front = self.model_front_end(model)
        if front is not None:
            return front.float_outputs(model, graph, x, timesteps, batch_size)
        raise NeurodeployError(f"cannot run the float {self.name} SNN from '{Path(model).name}'", str(model),
                               "verify from Python: neurodeploy.verify(net, model, x, y) with the trained nn.Module")

    def __repr__(self) -> str:
        return f"<scheme {self.name}>"


@dataclass(frozen=True)
class Verdict:
    """What verify's counts say (`Scheme.verdict`): `word` EXACT / NOT EXACT / APPROXIMATE, whether
    the scheme's guarantee `holds` on these inputs (verify's exit status 0), and the `reason`: the
    counts that decide it, in one sentence."""
    word: str
    holds: bool
    reason: str

    def to_dict(self) -> dict:
        return {"word": self.word, "holds": self.holds, "reason": self.reason}

    def line(self) -> str:
        return f"{self.word}: {self.reason}"


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.3g}%" if whole else "-"


def _differs(a, b) -> bool:
    if a is None or b is None:
        return (a is None) != (b is None)
    try:
        return bool(a != b)
    except (TypeError, ValueError):       # arrays
        return True
