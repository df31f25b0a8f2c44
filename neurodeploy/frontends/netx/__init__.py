"""Lava-DL NetX import: `neurodeploy compile net.net` / `nd.compile("net.net")`.

A NetX HDF5 file (slayer's `export_hdf5`, or `neurodeploy export --format netx`) already is
a fixed-point spiking network: it is read with h5py and checked (`reader`), then rebuilt in
the spiking IR with the `cuba` or `sdnn` scheme's neurons (`build`), with no quantisation
step: our simulator runs the file's integers as `lava.lib.dl.netx.hdf5.Network` runs them in
Lava (Loihi2SimCfg fixed_pt), bit for bit (tests/test_netx_import.py).  `verify` compares the
two (`frontends.netx.verify`): a NetX network has no float model.  The neurons of each
family come from the scheme that holds it (`Scheme.netx_neurons`, `Scheme.netx_files()`); the import's
options (`options.NetxOptions`) are the arguments netx.hdf5.Network takes besides the file.
"""
from __future__ import annotations

from pathlib import Path

from ...errors import NeurodeployError

NETX_SUFFIX = ".net"                     # slayer's and Lava-DL's name for NetX files
HDF5_SUFFIXES = (".h5", ".hdf5")          # also NetX when the file holds a 'layer' group


def is_netx_path(path) -> bool:
    """A `.net` file, or an `.h5` / `.hdf5` file that holds a NetX 'layer' group."""
    if not isinstance(path, (str, Path)):
        return False
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == NETX_SUFFIX:
        return True
    if suffix not in HDF5_SUFFIXES or not path.is_file():
        return False
    import h5py
    try:
        with h5py.File(path, "r") as h:
            return isinstance(h.get("layer"), h5py.Group)
    except OSError:
        return False


def import_netx(path, target: str = "loihi2", scheme: str | None = None, options=None):
    """The spiking IR of a NetX file (meta like `compiler.compile_graph`'s, plus meta["netx"]).

    `scheme` may name the file's own scheme (the scheme whose `netx_neurons` hold the file's
    neuron family: cuba for CUBA/LOIHI, sdnn for SDNN) or be None, which means the file's.
    `options`: `options.NetxOptions`, a dict of its fields, or None (`options.netx_options`)."""
    from ...target import load_target
    from ...target.allocation import check_fits
    from .build import build_graph
    from .options import netx_options
    from .reader import read_netx

    options = netx_options(options, str(path))
    tgt = load_target(target)
    net = build_graph(read_netx(path), options, tgt.name)
    if scheme not in (None, net.scheme):
        raise NeurodeployError(f"a NetX file of {net.meta['netx']['neurons']} neurons compiles to the "
                               f"{net.scheme} scheme, not {scheme}", str(path),
                               f"drop --scheme or pass --scheme {net.scheme}")
    net.meta.update({
        "options": {"target": tgt.name, "scheme": net.scheme, "timesteps": options.timesteps,
                    "reset_interval": options.reset_interval, "reset_offset": options.reset_offset,
                    "input_message_bits": options.input_message_bits, "input_mode": options.input_mode},
        "target_spec": tgt.to_dict(),
    })
    net.meta["allocation"] = check_fits(net, options.chips)
    net.meta["options"]["chips"] = options.chips
    return net
