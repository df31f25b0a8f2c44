"""`neurodeploy compare` on a Lava-DL NetX file: the file's own network, as imported."""
from __future__ import annotations


def compare_configs(model, schemes: list[str], options: dict) -> tuple[list, list]:
    """One configuration, the file's own scheme (with the import options given); the other schemes
    asked for are skipped with the reason."""
    from . import import_netx
    from .options import NetxOptions
    own = import_netx(model, options=options).scheme
    skipped = [{"config": s, "reason": f"{model}: a NetX file imports as the {own} network it holds, not as {s}"}
               for s in schemes if s != own]
    defaults = NetxOptions()
    shown = {k: v for k, v in options.items() if v is not None and v != getattr(defaults, k)}
    return [{"scheme": own, "name": f"netx_{own}", "options": shown}], skipped
