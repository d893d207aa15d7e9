"""netlink-orchestrator: one netlink event engine for a mobile node's tunnels.

Plugins import ``hookimpl`` from here; the hooks themselves are documented in ``hookspecs``.
"""

from .hookspecs import hookimpl
from .schema import Key, Section

__version__ = "0.1.0"
__all__ = ["Key", "Section", "__version__", "hookimpl"]
