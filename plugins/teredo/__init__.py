"""Built-in plugin ``teredo``: re-qualify miredo the moment a move completes.

This release declares the ``[teredo]`` configuration contract; the re-qualification itself comes
with the Teredo plugin's own release.
"""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator import Key, Section, hookimpl
from orchestrator.config import Config

SECTION = Section(
    {
        "interface": Key("str", "the miredo tunnel interface (an [[interfaces]] tunnel)", "teredo"),
        "pidfile": Key("str", "pid file of miredo's supervisor, the SIGHUP target", "/run/miredo.pid"),
        "server": Key("ipv4", "the Teredo server's IPv4 literal (also the uplink reference)"),
        "min_requalify_interval_s": Key("float", "minimum time between two kicks", 1.0, 0, 3600),
        "qualification_timeout_s": Key("float", "wait this long for an address after a kick", 8.0, 0.5, 600),
    }
)


@hookimpl
def orchestrator_config_schema() -> Mapping[str, Section]:
    return {"teredo": SECTION}


@hookimpl
def orchestrator_uplink_reference(config: Config) -> str | None:
    """The Teredo server: the uplink that matters is the one miredo's packets leave by."""
    server = config.section("teredo").get("server")
    return str(server) if server else None


@hookimpl
def orchestrator_check_config(config: Config) -> list[str]:
    interface = config.section("teredo")["interface"]
    if config.role(interface) != "tunnel":
        return [f"teredo.interface: {interface!r} needs an [[interfaces]] entry with role 'tunnel'"]
    return []
