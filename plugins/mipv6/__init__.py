"""Built-in plugin ``mipv6``: stale care-of address purge and confirmed Mobile IPv6 handover.

This release declares the ``[mipv6]`` configuration contract; the handover engine comes with the
Mobile IPv6 plugin's own release.
"""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator import Key, Section, hookimpl

SECTION = Section(
    {
        "home_address": Key("ipv6", "the mobile node's home address"),
        "home_agent": Key("ipv6", "the home agent's address"),
        "handover_timeout_s": Key("float", "a handover not confirmed by then failed", 5.0, 0.1, 600),
        "mip6d_conf": Key("str", "mip6d's configuration file", "/usr/local/etc/mip6d.conf"),
    }
)


@hookimpl
def orchestrator_config_schema() -> Mapping[str, Section]:
    return {"mipv6": SECTION}
