"""The daemon's hot standby in a ``StandbyLab``: its configuration, and the mobile node bound through
the preferred of two qualified tunnels.

Why a module: the hot-standby tests (tests/kernel/test_standby.py) and the failover bench
(bench/failover.py) bring the same lab to the same starting point; each keeps only what it does
differently (the tests check that the daemon stops cleanly, the bench rewrites the configuration
between its set-ups).  :func:`hot_standby` is the whole set-up as one context manager, for users
that keep it for a long time (the soak kills and restarts the daemon inside it).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .configs import STANDBY_INTERFACES, STANDBY_PROFILE, shell_script, standby_entry, write_teredo
from .mip6_lab import HOME_ADDRESS, HOME_AGENT
from .mip6_standins import HomeAgentStandIn, MobileNodeStandIn
from .netns import wait_for
from .orchestrator_processes import DaemonProcess, client_hook
from .plugin_site import distribution, environment
from .standby_lab import BOTH_TUNNELS, STANDBY_TUNNEL_IF, StandbyLab
from .teredo_lab import SERVER_ADDRESS, miredo_client_config

# The same uplinks and tunnels with teredo bound to no uplink: one tunnel that follows whichever uplink
# is active, what a node without the hot standby does.
UNBOUND_INTERFACES = STANDBY_INTERFACES.replace('uplink = "eth0"\n', "")


def standby_config(lab: StandbyLab, *, standby: bool = True, grace: int = 2000,
                   handover_timeout_s: int | None = None, keep_miredo_conf: bool = False,
                   daemon: str = "", plugins: tuple[str, ...] = ()) -> Path:
    """The daemon's configuration (plugins routing, teredo and mipv6) for ``lab``'s node, in the one
    file the client hook reads too; rewriting it keeps its path.

    With ``standby``: teredo bound to eth0, teredo2 a ``[[teredo.standby]]`` instance bound to wlan0,
    and the standby miredo's own file written afresh (``InterfaceName teredo2``, the lab's server):
    the daemon writes the BindAddress into that file, so it must exist before the daemon starts.
    Without: no standby instance and teredo bound to no uplink; the standby miredo's file is left
    alone.  ``handover_timeout_s``: mipv6's, left to its default unless given.  ``keep_miredo_conf``:
    leave the standby miredo's file as it is (a rewrite while the daemon runs: the file holds the
    BindAddress the daemon wrote, and a fresh one would lose it).  ``daemon``: lines of ``[daemon]``
    (the soak's small netlink buffer); ``plugins``: more plugins to enable after the three."""
    if standby and not keep_miredo_conf:
        lab.standby_conf.write_text(miredo_client_config(f"InterfaceName {STANDBY_TUNNEL_IF}"))
    mipv6 = f'[mipv6]\nhome_agent = "{HOME_AGENT}"\nhome_address = "{HOME_ADDRESS}"\n'
    if handover_timeout_s is not None:
        mipv6 += f"handover_timeout_s = {handover_timeout_s}\n"
    entry = standby_entry(STANDBY_TUNNEL_IF, lab.standby_pidfile, lab.standby_conf) if standby else ""
    enable = ("routing", "teredo", "mipv6", *plugins)
    return write_teredo(lab.tmp, lab.miredo_pidfile, SERVER_ADDRESS, grace=grace, daemon=daemon,
                        enable=enable, extra=STANDBY_PROFILE + mipv6 + entry,
                        interfaces=STANDBY_INTERFACES if standby else UNBOUND_INTERFACES)


def bind_through_teredo(lab: StandbyLab, hook: Path) -> tuple[HomeAgentStandIn, MobileNodeStandIn]:
    """Both miredo clients started with ``hook`` and both tunnels routed, then the home agent
    (accepting every Binding Update) and the mobile node over both tunnels; returns the two once the
    first BA is back, the binding through teredo (the preferred tunnel).  Start the daemon first:
    the standby's miredo starts once the daemon has written wlan0's address into its file."""
    written = f"BindAddress {str(lab.standby_address()).split('/')[0]}"
    wait_for(lambda: written in lab.standby_conf.read_text(), 5, "the daemon to write BindAddress")
    lab.start_miredo(hook)
    lab.launch_standby_miredo(hook)
    lab.wait_teredo_routed()
    lab.wait_teredo_routed(iface=STANDBY_TUNNEL_IF)
    ha = lab.start_home_agent(status=0)
    mn = lab.start_mobile_node(BOTH_TUNNELS, lifetime=60)
    mn.wait_event("ba-received", 15, status=0)
    return ha, mn


@dataclass
class StandbyRig:
    """The daemon on the hot-standby configuration in a ``StandbyLab``, both miredo clients with
    the project's client hook, and the stand-ins bound through teredo.  ``daemon`` changes when
    :meth:`restart_daemon` replaces it."""

    lab: StandbyLab
    daemon: DaemonProcess
    config: Path
    hook: Path
    ha: HomeAgentStandIn
    mn: MobileNodeStandIn
    daemon_settings: str = ""  # the ``[daemon]`` lines of its configuration, kept by rewrites
    plugins: tuple[str, ...] = ()  # enabled after the three, found through ``env``
    env: dict[str, str] | None = None

    def restart_daemon(self) -> DaemonProcess:
        """A new daemon on the same configuration and control socket (the last one stopped or
        killed first); returns once it answers."""
        self.daemon = DaemonProcess(self.lab.node, self.config, self.daemon.socket, env=self.env)
        return self.daemon


SITE_PYTHON = """\
# The lab's interpreter for the client hook's full path: this environment's Python with the test
# plugins' site on its path (the hook runs "PYTHON -I -m orchestrator_routing.hook ARGS", and -I
# ignores PYTHONPATH), so that the hook knows the plugins the configuration enables.
[ "$1 $2 $3" = "-I -m orchestrator_routing.hook" ] || exit 64
shift 3
exec {python} -I -c 'import runpy, sys; sys.path.insert(0, "{site}"); \
runpy.run_module("orchestrator_routing.hook", run_name="__main__", alter_sys=True)' "$@"
"""


def site_python(site: Path) -> Path:
    """An executable standing in for Python in the client hook (see ``SITE_PYTHON``), root's."""
    return shell_script(site, "python", SITE_PYTHON.format(python=sys.executable, site=site))


@contextmanager
def hot_standby(grace: int = 2000, handover_timeout_s: int | None = None,
                renew_after: int | None = None, daemon_settings: str = "",
                plugins: Mapping[str, str] | None = None) -> Iterator[StandbyRig]:
    """A ``StandbyLab`` (``renew_after``: the DHCP servers' T1, for ``dhcp.renew()``), the daemon
    started first (the standby's miredo reads the file the daemon wrote), then both miredo clients,
    the home agent and the mobile node, bound through the preferred tunnel.  The daemon must stop
    cleanly at the end.  ``daemon_settings``: lines of its ``[daemon]``; ``plugins``: more plugins
    (name -> ``module:object``), in a private site that the daemon and the client hook alone find
    (:func:`site_python`), with ``ORCHESTRATOR_TESTKIT_TMP`` naming the lab's directory."""
    with StandbyLab(renew_after=renew_after) as lab:
        env, python = None, sys.executable
        if plugins:
            site = lab.tmp / "site"
            site.mkdir()
            distribution(site, "testkit-plugins", dict(plugins))
            env = environment(site, ORCHESTRATOR_TESTKIT_TMP=str(lab.tmp))
            python = str(site_python(site))
        names = tuple(plugins or ())
        config = standby_config(lab, grace=grace, handover_timeout_s=handover_timeout_s,
                                daemon=daemon_settings, plugins=names)
        daemon = DaemonProcess(lab.node, config, config.parent / "control.sock", env=env)
        hook = client_hook(lab.tmp, config, python=python, env=env)
        ha, mn = bind_through_teredo(lab, hook)
        rig = StandbyRig(lab, daemon, config, hook, ha, mn, daemon_settings, names, env)
        yield rig
        assert rig.daemon.stop() == 0
