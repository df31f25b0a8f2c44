"""How an exporter meant its NIR graph to be stepped: the conventions NIR leaves open.

A NIR graph states continuous-time ODEs (``tau dv/dt = (v_leak - v) + R I`` ...) but not the
time step, the discretisation, the reset or the firing comparison its producer used, and the
exporters differ in each.  neurodeploy never guesses one: every choice is a field of
`NirConventions`, set by a preset (``--nir-from snntorch``) or one option each (``--nir-dt``,
``--nir-reset`` ...).  The discrete model every field feeds (`params.py`), per step:

    current (CubaLIF):  I = alpha * I + c_in * x             alpha = decay(dt, tau_syn)
    voltage:            v = beta * v + g * (I or x) + (1 - beta) * v_leak   beta = decay(dt, tau)
    spike:              s = v > v_threshold  (fire_on ">=": v >= v_threshold)
    reset:              v = 0 where s        (reset "subtract": v -= v_threshold)

    decay "euler": 1 - dt/tau (NIR's forward Euler);  "exp": exp(-dt/tau) (exact / ZOH)
    input_gain "ode": g = r (1 - beta) (the ODE's own input gain);  "r": g = r (unnormalised)
    integrator_gain (IF, I; beta = 1) "ode": g = r dt;  "r": g = r
    current_input "ode": c_in = w_in (1 - alpha) (the current ODE);  "jump": c_in = w_in

What each library's exporter writes (read from their sources and checked against their own
simulators by tests/test_nir_libraries.py):

| library (version)   | dt (NIR units per step) | decay | input_gain | IF gain | current | fires on | reset |
|---------------------|--------------------|-------|-----|-----|------|----|-------|
| snnTorch 1.0.0      | 1e-4               | euler | ode | ode | ode  | >  | not recorded: pass --nir-reset (snnTorch default subtract) |
| Norse 1.1.0         | 1e-6 (= its dt 1e-3 squared: it writes tau = dt/tau_inv) | euler | ode | r | jump | > | zero |
| sinabs 2.0.3        | 1 (tau in steps)   | exp   | r (norm_input=False; ode for norm_input=True) | ode | - | >= | not recorded: pass --nir-reset (sinabs default subtract) |
| SpikingJelly 2.0.0  | 1e-4               | euler | ode | ode | ode  | >= | zero (its exporter refuses soft reset) |

`spec` is NIR's own reading: forward Euler, reset to v_reset, v > v_threshold; it needs
``--nir-dt``.  Loihi 2's CUBA LIF fires on v > threshold and resets to 0: a graph trained with
subtractive reset is refused; ``>=`` is accepted and noted (the two differ only where v lands
exactly on the threshold).
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

from ...errors import NeurodeployError

DECAYS = ("euler", "exp")
GAINS = ("ode", "r")
CURRENT_INPUTS = ("ode", "jump")
FIRE_ON = (">", ">=")
RESETS = ("zero", "subtract")


@dataclass(frozen=True)
class NirConventions:
    """The discretisation a NIR graph's producer used (module docstring).  None = not stated."""
    dt: float | None = None            # time step in the graph's time unit (tau fields / dt = steps)
    decay: str = "euler"
    input_gain: str = "ode"
    integrator_gain: str = "ode"
    current_input: str = "ode"
    fire_on: str = ">"
    reset: str | None = "zero"
    source: str = "spec"               # the preset these came from (for reports)

    def check(self) -> "NirConventions":
        for name, allowed in (("decay", DECAYS), ("input_gain", GAINS), ("integrator_gain", GAINS),
                              ("current_input", CURRENT_INPUTS), ("fire_on", FIRE_ON)):
            if getattr(self, name) not in allowed:
                raise NeurodeployError(f"unknown {name} convention {getattr(self, name)!r}",
                                       f"--nir-{name.replace('_', '-')}", f"use one of {', '.join(allowed)}")
        if self.reset is not None and self.reset not in RESETS:
            raise NeurodeployError(f"unknown reset convention {self.reset!r}", "--nir-reset",
                                   f"use one of {', '.join(RESETS)}")
        if self.dt is not None and not self.dt > 0:
            raise NeurodeployError(f"time step {self.dt} is not positive", "--nir-dt", "pass dt > 0")
        return self

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


PRESETS: dict[str, NirConventions] = {
    "spec": NirConventions(),
    "snntorch": NirConventions(dt=1e-4, reset=None, source="snntorch"),
    "norse": NirConventions(dt=1e-6, integrator_gain="r", current_input="jump", source="norse"),
    "sinabs": NirConventions(dt=1.0, decay="exp", input_gain="r", fire_on=">=", reset=None, source="sinabs"),
    "spikingjelly": NirConventions(dt=1e-4, fire_on=">=", source="spikingjelly"),
}

# what a user reads when a convention is missing: where each library stands
RESET_HINT = ("NIR does not record the reset: pass --nir-reset zero if the network was trained with reset to zero "
              "(snnTorch reset_mechanism='zero', sinabs MembraneReset()), subtract otherwise")


def conventions(preset: str | None = None, **overrides) -> NirConventions:
    """The conventions of `preset` (default "spec") with `overrides` (None values ignored)."""
    name = preset or "spec"
    if name not in PRESETS:
        raise NeurodeployError(f"unknown NIR producer '{name}'", "--nir-from",
                               f"use one of {', '.join(sorted(PRESETS))}")
    base = PRESETS[name]
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - {f.name for f in fields(NirConventions)})
    if unknown:
        raise NeurodeployError(f"unknown NIR convention(s) {', '.join(unknown)}", "nir conventions",
                               f"fields are: {', '.join(f.name for f in fields(NirConventions))}")
    return replace(base, **given).check()


def from_options(options) -> NirConventions:
    """The conventions a compile's options name: the preset of `nir_from` (--nir-from; default
    "spec") with each `nir_<field>` given (--nir-dt, --nir-reset, ...) overriding it."""
    overrides = {f.name: getattr(options, f"nir_{f.name}", None) for f in fields(NirConventions) if f.name != "source"}
    return conventions(getattr(options, "nir_from", None), **overrides)


def as_conventions(value) -> NirConventions:
    """`NirConventions` from None (NIR's own reading), a preset name ("snntorch"), a dict of fields
    (with an optional "preset"; meta["nir"]["conventions"] records them with their "source"), or
    NirConventions."""
    if value is None:
        return conventions()
    if isinstance(value, NirConventions):
        return value.check()
    if isinstance(value, str):
        return conventions(value)
    if isinstance(value, dict):
        d = dict(value)
        return conventions(d.pop("preset", None) or d.pop("source", None), **d)
    raise NeurodeployError(f"cannot read NIR conventions from a {type(value).__name__}", "nir",
                           "pass a preset name (e.g. 'snntorch'), a dict of fields or a NirConventions")
