"""Read a NIR graph into plain data: `RawGraph` (named nodes of a type and numpy fields, edges).

Files are HDF5 (the `nir` package's format: a ``node`` group with ``type``, ``nodes/<name>/...``
and ``edges``); they are read with h5py only -- no node constructor runs, so a graph whose
types or shapes are incomplete (see `shapes.py`) still reads, and nothing is unpickled (an
object-typed dataset other than a string is refused).  An in-memory ``nir.NIRGraph`` is read
through its own ``to_dict()``.

Nested graphs (snnTorch's RLeaky/RSynaptic are exported as one) are flattened: their nodes
are named ``<graph>.<node>``, their Input and Output nodes become pass-through ``Identity``
nodes, and the parent's edges to and from the subgraph attach to those.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import NeurodeployError, UnsupportedError


@dataclass
class RawNode:
    """One NIR node: its `type` name (``"LIF"``, ``"Affine"`` ...) and its fields as numpy arrays."""
    name: str
    type: str
    params: dict
    metadata: dict = field(default_factory=dict)

    def get(self, key: str, default=None):
        return self.params.get(key, default)

    def array(self, key: str, where: str = "") -> np.ndarray:
        if key not in self.params or self.params[key] is None:
            raise UnsupportedError(f"{self.type} node has no '{key}'", where or f"node '{self.name}'",
                                   "the file is not a complete NIR graph")
        return np.asarray(self.params[key], dtype=np.float64)


@dataclass
class RawGraph:
    nodes: dict                 # name -> RawNode, in file order
    edges: list                 # (source, target) names
    source: str = ""            # file name, for messages
    version: str = ""
    metadata: dict = field(default_factory=dict)

    def where(self, name: str) -> str:
        node = self.nodes.get(name)
        label = f"node '{name}'" + (f" ({node.type})" if node is not None else "")
        return f"{self.source}: {label}" if self.source else label

    def inputs(self, name: str) -> list[str]:
        return [a for a, b in self.edges if b == name]

    def consumers(self, name: str) -> list[str]:
        return [b for a, b in self.edges if a == name]


def _text(v) -> str:
    return v.decode("utf8") if isinstance(v, bytes) else str(v)


def _value(v, where: str):
    """A dataset's value as plain data: str, or a numeric numpy array."""
    if isinstance(v, (bytes, str)):
        return _text(v)
    arr = np.asarray(v)
    if arr.dtype == object:
        if all(isinstance(e, (bytes, str)) for e in arr.ravel()):
            return np.vectorize(_text, otypes=[object])(arr) if arr.ndim else _text(arr.item())
        raise UnsupportedError("an object-typed dataset that is not text", where, "re-export the graph with nir.write")
    return arr


def _h5_to_dict(group, where: str) -> dict:
    import h5py
    out = {}
    for key, item in group.items():
        if isinstance(item, h5py.Group):
            out[key] = _h5_to_dict(item, f"{where}/{key}")
        else:
            out[key] = _value(item[()], f"{where}/{key}")
    return out


def _plain(v):
    """nir.NIRNode.to_dict values (numpy, torch tensors, tuples, numbers) -> numpy / str / dict."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (str, bytes)):
        return _text(v)
    if v is None:
        return None
    if hasattr(v, "detach"):                       # a torch tensor left in by an exporter
        v = v.detach().cpu().numpy()
    return np.asarray(v)


def _edges(raw, where: str) -> list[tuple[str, str]]:
    if raw is None:
        return []
    arr = np.asarray(raw, dtype=object)
    if arr.size == 0:
        return []
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise UnsupportedError(f"edges of shape {arr.shape}, expected (n, 2)", where)
    return [(_text(a), _text(b)) for a, b in arr]


def _flatten(d: dict, prefix: str, graph: RawGraph, where: str) -> tuple[list[str], list[str]]:
    """Add the nodes and edges of graph dict `d` to `graph` under `prefix`; returns the names
    of its Input and Output nodes (for the parent's edges)."""
    nodes = d.get("nodes")
    if not isinstance(nodes, dict):
        raise UnsupportedError("a NIRGraph without nodes", where, "the file is not a NIR graph")
    ins, outs, sub = [], [], {}
    for name, nd in nodes.items():
        full = f"{prefix}{name}"
        if not isinstance(nd, dict) or "type" not in nd:
            raise UnsupportedError("a node without a type", f"{where}: node '{full}'")
        typ = _text(nd["type"])
        if typ == "NIRGraph":
            sub[name] = _flatten(nd, f"{full}.", graph, where)
            continue
        params = {k: v for k, v in nd.items() if k not in ("type", "metadata")}
        meta = nd.get("metadata") or {}
        if prefix and typ in ("Input", "Output"):
            # a subgraph's own ports pass through; keep their shapes for the shape inference
            graph.nodes[full] = RawNode(full, "Identity", params, dict(meta, port=typ))
        else:
            graph.nodes[full] = RawNode(full, typ, params, dict(meta))
        if typ == "Input":
            ins.append(full)
        elif typ == "Output":
            outs.append(full)
    for a, b in _edges(d.get("edges"), where):
        srcs = sub[a][1] if a in sub else [f"{prefix}{a}"]
        dsts = sub[b][0] if b in sub else [f"{prefix}{b}"]
        for s in srcs:
            for t in dsts:
                graph.edges.append((s, t))
    return ins, outs


def graph_from_dict(d: dict, source: str = "", version: str = "") -> RawGraph:
    """A RawGraph from the dict of a NIRGraph (as stored in a file or given by ``to_dict()``)."""
    graph = RawGraph({}, [], source, version, dict(d.get("metadata") or {}))
    if _text(d.get("type", "")) != "NIRGraph":
        raise UnsupportedError(f"the top node is a {_text(d.get('type', '?'))}, not a NIRGraph", source,
                               "export the whole network as a nir.NIRGraph")
    _flatten(d, "", graph, source)
    for a, b in graph.edges:
        for n in (a, b):
            if n not in graph.nodes:
                raise UnsupportedError(f"an edge names node '{n}', which the graph does not have",
                                       f"{source}: edge {a} -> {b}", "the file is not a complete NIR graph")
    return graph


def read_nir(path: str | Path) -> RawGraph:
    """Read a NIR HDF5 file (h5py only) into a RawGraph."""
    import h5py
    path = Path(path)
    if not path.is_file():
        raise NeurodeployError("no such file", str(path), "pass the .nir file written by nir.write")
    try:
        with h5py.File(path, "r") as f:
            if "node" not in f:
                raise UnsupportedError("an HDF5 file without a 'node' group", str(path),
                                       "pass a NIR graph written by nir.write")
            version = _text(f["version"][()]) if "version" in f else ""
            d = _h5_to_dict(f["node"], path.name)
    except OSError as exc:
        raise NeurodeployError(f"not a readable HDF5 file ({exc})", str(path),
                               "pass a NIR graph written by nir.write") from None
    return graph_from_dict(d, path.name, version)


def read_graph(graph) -> RawGraph:
    """A RawGraph from an in-memory ``nir.NIRGraph``."""
    return graph_from_dict(_plain(graph.to_dict()), "nir.NIRGraph", "")
