"""6to4 for netlink-orchestrator: the tunnel's 2002:WWXX:YYZZ::/48 prefix follows the IPv4 uplink.

``settings`` reads the ``[6to4]`` section, ``prefix`` decides what the tunnel should carry for an
uplink (pure), ``device`` brings the interface there over netlink (blocking), ``plugin`` wires it to
the daemon's hooks.
"""
