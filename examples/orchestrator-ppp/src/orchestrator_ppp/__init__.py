"""orchestrator_ppp: PPP links (pppd) as IPv4 uplinks, and their IPv6 side (IPV6CP) as a tunnel's.

The plugin object is ``PLUGIN`` (entry point ``ppp`` in the group ``orchestrator.plugins``).
"""

from __future__ import annotations

from .plugin import PLUGIN

__all__ = ["PLUGIN"]
