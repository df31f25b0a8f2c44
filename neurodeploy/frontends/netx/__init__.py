"""Lava-DL NetX import: `neurodeploy compile net.net` / `nd.compile("net.net")`.

A NetX HDF5 file (slayer's `export_hdf5`, or `neurodeploy export --format netx`) already is
a fixed-point spiking network: it is read with h5py and checked (`reader`), then rebuilt in
the spiking IR with the `cuba` or `sdnn` scheme's neurons (`build`), with no quantisation
step: our simulator runs the file's integers as `lava.lib.dl.netx.hdf5.Network` runs them in
Lava (Loihi2SimCfg fixed_pt), bit for bit (tests/test_netx_import.py).  `verify` compares the
two (`frontends.netx.verify`): a NetX network has no float model.
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

    `scheme` may name the file's own scheme (cuba for CUBA/LOIHI neurons, sdnn for SDNN) or be
    None / "bitplane" (the CLI's default), which means the file's."""
    from ...reports.costs import check_fits
    from ...schemes import CompileOptions
    from ...target import load_target
    from .build import build_graph
    from .reader import read_netx

    options = options or CompileOptions()
    tgt = load_target(target)
    net = build_graph(read_netx(path), options, tgt.name)
    if scheme not in (None, "bitplane", net.scheme):
        raise NeurodeployError(f"a NetX file of {net.meta['netx']['neurons']} neurons compiles to the "
                               f"{net.scheme} scheme, not {scheme}", str(path),
                               f"drop --scheme or pass --scheme {net.scheme}")
    net.meta.update({
        "options": {"target": tgt.name, "scheme": net.scheme, "timesteps": options.timesteps,
                    "reset_interval": getattr(options, "reset_interval", None),
                    "reset_offset": getattr(options, "reset_offset", 0),
                    "input_message_bits": getattr(options, "input_message_bits", None),
                    "input_mode": getattr(options, "input_mode", "auto")},
        "target_spec": tgt.to_dict(),
    })
    net.meta["allocation"] = check_fits(net, options.chips)
    net.meta["options"]["chips"] = options.chips
    return net
