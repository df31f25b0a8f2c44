"""The options of a NetX import: the arguments netx.hdf5.Network takes besides the file, the run
length of a CUBA network and the chips it may use.

A NetX file is a fixed-point spiking network already: it is read as it is, so the compile
options of the quantising schemes (calibration, input bits, ...) do not apply to it and are
refused; these options, in turn, apply to NetX files only.  Each field is made with
`schemes.base.option`, whose metadata the command line builds its flags from (`cli.py`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ...errors import NeurodeployError
from ...schemes.base import check_option, chips_count, flag, option

INPUT_MODES = ("auto", "sequence", "constant")
TITLE = "NetX files"          # how the command line's help marks these flags


@dataclass
class NetxOptions:
    timesteps: int | None = option(None, "steps a CUBA network runs (default: the file's simulation/tSample)",
                                   type=int, metavar="T")
    chips: int | str = option(1, "chips available (default 1; 'auto': as many as the network needs)",
                              type=chips_count, range=(1, None), metavar="N|auto")
    reset_interval: int | None = option(
        None, "netx reset_interval: CUBA neurons reset u and v every N steps (Lava's LIFReset; block k at steps "
              "t with t %% N == reset_offset + 1 + k); default: no reset", type=int, metavar="N")
    reset_offset: int = option(0, "netx reset_offset (default 0)", type=int, metavar="K")
    input_message_bits: int | None = option(
        None, "netx input_message_bits: graded input of B bits into net.inp (default 0: binary spikes); for "
              "files without an input neuron", type=int, metavar="B")
    input_mode: str = option(
        "auto", "input of a file without an input neuron: sequence = a frame per step, inputs shaped (N, T, ...) "
                "(auto for CUBA); constant = one frame, sent every step (CUBA) or once (SDNN, auto)",
        type=str, choices=INPUT_MODES, metavar="MODE")


def netx_fields() -> list:
    return list(dataclasses.fields(NetxOptions))


# the options that only a NetX import has (timesteps and chips are every scheme's too)
NETX_ONLY = tuple(f.name for f in netx_fields() if f.name not in ("timesteps", "chips"))


def netx_options(given, where: str) -> NetxOptions:
    """NetxOptions from None (defaults), a NetxOptions, a dict of option values (the command line's
    given flags, `neurodeploy.compile`'s keyword arguments) or another options dataclass (e.g. a
    flat `CompileOptions`).  A value given for an option a NetX import does not have is refused
    (None and, for a dataclass, its own default count as not given)."""
    if given is None:
        opts = NetxOptions()
    elif isinstance(given, NetxOptions):
        opts = given
    else:
        if isinstance(given, dict):
            values = {k: v for k, v in given.items() if v is not None}
        elif dataclasses.is_dataclass(given):
            values = {f.name: getattr(given, f.name) for f in dataclasses.fields(given)
                      if getattr(given, f.name) is not None and _differs(getattr(given, f.name), f)}
        else:
            raise NeurodeployError(f"options must be a dict or NetxOptions, not {type(given).__name__}", where)
        mine = {f.name for f in netx_fields()}
        foreign = [k for k in values if k not in mine]
        if foreign:
            raise NeurodeployError(f"a NetX file is imported as it is: {flag(foreign[0])} does not apply", where,
                                   "drop it; the options of a NetX file are "
                                   + ", ".join(flag(f.name) for f in netx_fields()))
        opts = NetxOptions(**values)
    for f in netx_fields():
        check_option(f.name, getattr(opts, f.name), f)
    return opts


def _differs(value, f) -> bool:
    default = f.default if f.default is not dataclasses.MISSING else None
    try:
        return bool(value != default)
    except (TypeError, ValueError):       # arrays
        return True


def refuse_netx_only(options, model) -> None:
    """An option only a NetX import has, given for another model file: say so."""
    given = options if isinstance(options, dict) else {}
    for name in NETX_ONLY:
        if given.get(name) is not None:
            raise NeurodeployError(f"{flag(name)} applies to Lava-DL NetX files (.net) only", str(model),
                                   f"drop {flag(name)}")
