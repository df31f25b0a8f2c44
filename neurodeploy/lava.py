"""`from neurodeploy.lava import netx`: Lava-DL's NetX, importable on Python 3.11.

lava-nc 0.10.0 and lava-dl 0.6.0 declare Python < 3.11, and on 3.11 `import lava...` fails
(a dataclass default Python 3.11 rejects); on NumPy 2 Lava's fixed-point Conv overflows for
inputs wider than 127.  Importing this module installs neurodeploy's import hook
(`neurodeploy.backends.lava.compat`: the installed files are patched in memory at import,
never on disk) and imports `lava.lib.dl.netx`; after it, any `import lava...` in the same
interpreter works, and so do the processes Lava's runtime forks.  A script that runs a NetX
file therefore starts with

    from neurodeploy.lava import netx          # instead of: from lava.lib.dl import netx
    net = netx.hdf5.Network(net_config="net.net", input_message_bits=8)

`LAVA_VERSION` is the installed lava-nc version.  Raises NeurodeployError (with an install
hint) when lava-nc or lava-dl is missing.
"""
from __future__ import annotations

from .backends.lava.compat import ensure_lava
from .errors import NeurodeployError

LAVA_VERSION = ensure_lava()
try:
    from lava.lib.dl import netx  # noqa: E402
except ImportError as exc:                      # lava-dl missing or one of its imports
    raise NeurodeployError(f"lava-dl's netx cannot be imported ({exc})", "neurodeploy.lava",
                           "pip install lava-dl==0.6.0 --no-deps --ignore-requires-python (see requirements-lava.txt)") \
        from exc

__all__ = ["netx", "LAVA_VERSION"]
