"""Test support for netlink-orchestrator: real kernels, real daemons, private namespaces.

Shared by the test suite, the benchmarks and the demo (``make`` installs it into ``.venv``). Start
with ``lab.Lab`` (namespaces and processes, undone at exit); the topologies build on it:
``access_lab.AccessLab`` (a node moving between DHCP networks), ``teredo_lab.TeredoLab`` (real
miredo behind NAT, a real miredo-server), ``mip6_lab.MipLab`` (a Teredo relay and a home agent's
site behind it), ``standby_lab.StandbyLab`` (a second uplink, wlan0, with its own NAT and
miredo).  Around them: ``netns`` (namespaces, tracked processes, ``wait_for``), ``dhcp_clients``,
``ip_monitor`` (the kernel's own account with ``ip -ts monitor``),
``teredo_watch`` (a Teredo move's timeline), ``teredo_rig`` (the daemon in a Teredo lab and what to
ask of it), ``standby_rig`` (the daemon's hot standby in a two-uplink lab), ``timings`` (a test's
measured figures, reported), ``baseline_hooks`` (miredo client hooks the benches compare the
project's with),
``xfrm_messages`` (XFRM netlink messages built field by field), ``mip6_nodes`` (the home-agent and
mobile-node programs standing in for UMIP) and ``mip6_standins`` (their handles),
``ppp_standin``, ``orchestrator_processes`` (the daemon and its commands as processes), ``configs``,
``plugin_site`` and ``fake_plugins`` (third-party plugins as pip installs them), ``scenarios``,
``recorded_netlink`` (kernel messages built by pyroute2, for the unit tests), ``control_client``,
``installation`` (the sources and dependency wheels the README's install takes), ``debian_root`` (a
cached Debian 12 root with systemd, built by debootstrap) and ``systemd_container`` (that root booted
by systemd-nspawn, systemd as PID 1, in a lab's namespace).
"""

from pathlib import Path

#: The checkout this package was installed from (it lives in tests/testkit/).
REPO = Path(__file__).resolve().parents[3]
