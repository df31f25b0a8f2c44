"""Options of the `cuba` scheme: the common ones (--timesteps is the T the LIF network was trained with)
and, for NIR graphs (`frontends.nir`), how the graph's producer stepped it.

NIR records the ODEs but not the time step, the discretisation, the reset or the firing rule;
`--nir-from LIBRARY` names an exporter's conventions (`frontends.nir.conventions.PRESETS`) and
each `--nir-*` option overrides one of them.  They mean nothing for other models and are refused
there (`compiler.model_front_end`).
"""
from __future__ import annotations

from dataclasses import dataclass

from ...frontends.nir.conventions import CURRENT_INPUTS, DECAYS, FIRE_ON, GAINS, PRESETS, RESETS
from ..base import CommonOptions, option


@dataclass
class CubaOptions(CommonOptions):
    nir_from: str | None = option(None, "NIR graphs: the exporter's conventions: snntorch (dt 1e-4), norse (dt "
                                        "1e-6: Norse 1.1 writes tau = dt/tau_inv), sinabs (dt 1, exp decay), "
                                        "spikingjelly (dt 1e-4); spec = NIR's own reading (default; needs --nir-dt)",
                                  type=str, choices=tuple(sorted(PRESETS)))
    nir_dt: float | None = option(None, "NIR graphs: time step in the graph's time unit (overrides --nir-from)",
                                  type=float, metavar="DT")
    nir_reset: str | None = option(None, "NIR graphs: how the network was trained to reset (NIR does not record "
                                         "it; snnTorch and sinabs need it): zero, or subtract (refused: Loihi 2's "
                                         "CUBA LIF resets to 0)", type=str, choices=RESETS)
    nir_decay: str | None = option(None, "NIR graphs: euler: 1 - dt/tau; exp: exp(-dt/tau)", type=str,
                                   choices=DECAYS)
    nir_input_gain: str | None = option(None, "NIR graphs: ode: r (1 - decay) as in the ODE; r: r alone (sinabs "
                                              "norm_input=False)", type=str, choices=GAINS)
    nir_integrator_gain: str | None = option(None, "NIR graphs: IF / I input gain: ode: r dt; r: r", type=str,
                                             choices=GAINS)
    nir_current_input: str | None = option(None, "NIR graphs: CubaLIF current input: ode: w_in (1 - alpha); "
                                                 "jump: w_in (Norse)", type=str, choices=CURRENT_INPUTS)
    nir_fire_on: str | None = option(None, "NIR graphs: the trained firing rule: v > threshold or v >= threshold",
                                     type=str, choices=FIRE_ON)
