"""The `bitplane` scheme in Intel's Lava (Loihi2SimCfg(select_tag="fixed_pt")).

    plan.py       the layer-by-layer schedule (host-side, no Lava import)
    processes.py  the BitplaneIF / BitplaneReadout / BitserialMaxPool processes and models
    network.py    build the connected processes for a graph and run them (`build`, `run_lava`)

Importing this package does not import Lava; `build` and `run_lava` do.  Every module here uses
absolute imports: Lava's compiler re-executes them while it looks for ProcessModels.
"""


def __getattr__(name):
    if name in ("build", "run_lava", "LavaResult", "input_planes"):
        from neurodeploy.schemes.bitplane.lava import network
        return getattr(network, name)
    if name == "plan_network":
        from neurodeploy.schemes.bitplane.lava.plan import plan_network
        return plan_network
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
