"""netlink-orchestrator: one netlink event engine for a mobile node's tunnels.

Plugins import ``hookimpl``, ``Key`` and ``Section`` from here.  They are loaded on first use, so
that importing a light submodule (``orchestrator.wire`` in miredo's client hook) does not pay for
pluggy.  The hooks themselves are documented in ``hookspecs``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .hookspecs import hookimpl
    from .schema import Key, Section

__version__ = "0.1.0"
__all__ = ["Key", "Section", "__version__", "hookimpl"]
_LAZY = {"hookimpl": "hookspecs", "Key": "schema", "Section": "schema"}


def __getattr__(name: str) -> object:
    import importlib

    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
