"""Hardware targets, read from the TOML files in the repository's `targets/` folder.

Nothing about a chip is hard-coded elsewhere: passes ask a `Target` for bit widths and
limits.  `--target NAME` looks for `targets/NAME.toml`; a path to a .toml file works too.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..errors import NeurodeployError

TARGETS_DIR = Path(__file__).resolve().parent.parent.parent / "targets"


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    weight_mant_bits: int      # signed mantissa width of a synaptic weight
    weight_exp_min: int        # per-layer weight exponent range
    weight_exp_max: int
    state_bits: int            # signed width of the membrane / accumulator state
    v_th_mant_bits: int        # unsigned width of a threshold mantissa
    bias_mant_bits: int        # signed width of a bias mantissa
    bias_exp_max: int          # bias = bias_mant << bias_exp, 0 <= bias_exp <= bias_exp_max
    decay_bits: int
    graded_spikes: bool
    payload_bits: int          # graded-spike payload width
    cores_per_chip: int        # 0 = unlimited
    neurons_per_core: int      # 0 = unlimited
    synaptic_memory_bytes_per_core: int  # 0 = unlimited
    raw: dict

    @property
    def weight_mant_max(self) -> int:
        return (1 << (self.weight_mant_bits - 1)) - 1

    @property
    def state_max(self) -> int:
        return (1 << (self.state_bits - 1)) - 1

    @property
    def v_th_mant_max(self) -> int:
        return (1 << self.v_th_mant_bits) - 1

    @property
    def bias_mant_max(self) -> int:
        return (1 << (self.bias_mant_bits - 1)) - 1

    @property
    def decay_max(self) -> int:
        return (1 << self.decay_bits) - 1

    @property
    def payload_max(self) -> int:
        return (1 << self.payload_bits) - 1

    def to_dict(self) -> dict:
        return dict(self.raw)


# The schema of a target file: section -> key -> (type, lowest, highest); None = any value of the
# type.  The ranges keep every integer the simulator forms within exact int64 / float64 arithmetic
# (states below 2^53) and reject what no chip has (a 0-bit weight, a negative core count).
REQUIRED = {
    "": {"name": (str, None, None)},
    "weights": {"mant_bits": (int, 2, 32), "exp_min": (int, -32, 32), "exp_max": (int, -32, 32)},
    "neuron": {"state_bits": (int, 2, 53), "v_th_mant_bits": (int, 1, 52), "bias_mant_bits": (int, 2, 53),
               "bias_exp_max": (int, 0, 32), "decay_bits": (int, 1, 24)},
    "spikes": {"graded": (bool, None, None), "payload_bits": (int, 1, 32)},
    "chip": {"cores_per_chip": (int, 0, 1 << 20), "neurons_per_core": (int, 0, 1 << 30),
             "synaptic_memory_bytes_per_core": (int, 0, 1 << 40)},
}
OPTIONAL = {
    "": {"description": (str, None, None)},
    "neuron": {"lif_act_shift": (int, 0, 16)},
    "synapse_formats": {"binary_weight_bits": (int, 1, 16), "binary_note": (str, None, None)},
    # how sure each [chip] limit is ("public: <source>" or "estimate: <why>"), shown in the summary
    "chip_sources": {"cores_per_chip": (str, None, None), "neurons_per_core": (str, None, None),
                     "synaptic_memory_bytes_per_core": (str, None, None)},
}
TYPE_NAMES = {int: "an integer", bool: "true or false", str: "a string"}


def available_targets() -> list[str]:
    return sorted(p.stem for p in TARGETS_DIR.glob("*.toml"))


def load_target(name_or_path: str) -> Target:
    """Load `targets/<name>.toml` or an explicit .toml path."""
    if not isinstance(name_or_path, (str, Path)):
        raise NeurodeployError(f"target must be a name or a path, not {type(name_or_path).__name__}", "--target",
                               f"use one of {', '.join(available_targets())} or a path to a target .toml file")
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = TARGETS_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        raise NeurodeployError(
            f"unknown target '{name_or_path}'", str(path),
            f"use one of {', '.join(available_targets())} or a path to a target .toml file")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise NeurodeployError(f"target file is not valid TOML ({exc})", str(path),
                               "fix the file or pick another target") from None
    return target_from_dict(raw, str(path))


def _key_name(section: str, key: str) -> str:
    return f"[{section}] {key}" if section else key


def _check_value(value, kind, lo, hi, section: str, key: str, where: str) -> None:
    ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    if not ok:
        raise NeurodeployError(f"{_key_name(section, key)} = {value!r} must be {TYPE_NAMES[kind]}", where,
                               "fix the target file (compare it with targets/loihi2.toml)")
    if kind is int and ((lo is not None and value < lo) or (hi is not None and value > hi)):
        raise NeurodeployError(f"{_key_name(section, key)} = {value} is out of range {lo}..{hi}", where,
                               "fix the target file (compare it with targets/loihi2.toml)")
    if kind is str and key == "name" and not value.strip():
        raise NeurodeployError("name is empty", where, "give the target a name")


def _section(raw: dict, section: str, where: str, required: bool):
    if not section:
        return raw
    if section not in raw:
        if required:
            raise NeurodeployError(f"target file lacks the section [{section}]", where,
                                   "compare it with targets/loihi2.toml")
        return {}
    table = raw[section]
    if not isinstance(table, dict):
        raise NeurodeployError(f"[{section}] must be a table, not {type(table).__name__}", where,
                               "compare it with targets/loihi2.toml")
    return table


def target_from_dict(raw, where: str) -> Target:
    """A `Target` from a parsed target file (or a compiled network's recorded target_spec), checked
    against the schema above: every required key present, every value of its type and range."""
    if not isinstance(raw, dict):
        raise NeurodeployError(f"target description must be a table, not {type(raw).__name__}", where,
                               "compare it with targets/loihi2.toml")
    for schema, required in ((REQUIRED, True), (OPTIONAL, False)):
        for section, keys in schema.items():
            table = _section(raw, section, where, required)
            for key, (kind, lo, hi) in keys.items():
                if key not in table:
                    if required:
                        raise NeurodeployError(f"target file lacks the key {_key_name(section, key)}", where,
                                               "compare it with targets/loihi2.toml")
                    continue
                _check_value(table[key], kind, lo, hi, section, key, where)
    w, n, s, c = raw["weights"], raw["neuron"], raw["spikes"], raw["chip"]
    if w["exp_min"] > w["exp_max"]:
        raise NeurodeployError(f"[weights] exp_min = {w['exp_min']} is above exp_max = {w['exp_max']}", where,
                               "fix the target file")
    return Target(
        name=raw["name"], description=raw.get("description", ""),
        weight_mant_bits=w["mant_bits"], weight_exp_min=w["exp_min"], weight_exp_max=w["exp_max"],
        state_bits=n["state_bits"], v_th_mant_bits=n["v_th_mant_bits"],
        bias_mant_bits=n["bias_mant_bits"], bias_exp_max=n["bias_exp_max"], decay_bits=n["decay_bits"],
        graded_spikes=s["graded"], payload_bits=s["payload_bits"],
        cores_per_chip=c["cores_per_chip"], neurons_per_core=c["neurons_per_core"],
        synaptic_memory_bytes_per_core=c["synaptic_memory_bytes_per_core"],
        raw=raw,
    )
