"""neurodeploy: compile trained ANNs to spiking networks for Loihi 2, simulate them bit for bit.

Pipeline (one folder per stage): frontends -> passes -> ir -> schemes -> sim / backends -> reports.
"""
__version__ = "0.1.0"

from .errors import NeurodeployError  # noqa: E402,F401

# The Python API (neurodeploy/api.py), loaded on first use so that `import neurodeploy` stays light:
#   import neurodeploy as nd; net = nd.compile(model, x); nd.simulate(net, x); nd.verify(net, model, x, y)
#   nd.report(net, x, ...); nd.compare(model, x, y, ...); nd.export(net, "netx", "net.h5")
_API = ("compile", "simulate", "verify", "report", "compare", "export", "load", "CompiledNet")


def __getattr__(name):
    if name in _API:
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'neurodeploy' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_API))
