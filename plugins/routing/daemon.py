"""The routing plugin's part in the daemon: hear the client hook, keep the end state in place.

The client hook tells the daemon "begin IFACE STATE" before it changes the interface and "end IFACE
STATE ADDRESS LLADDRESS MTU" after (one datagram each, never waited for).  The daemon keeps the last
step per tunnel, and when someone removes an IPv6 route or rule (systemd-networkd deletes foreign
rules when it restarts), it brings the tunnel back to that step's end state — by difference, so it
writes nothing when nothing of ours was touched.  It never re-asserts while a hook runs, and never
on a tunnel that is stale (down, or its IPv4 uplink lost): there is no state there to defend.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator.config import Config
from orchestrator.context import PluginContext

from . import kernel
from .endstate import Step, end_state
from .hook import NOTIFY_NAME
from .profile import Profile, from_section, resolve_table, rt_tables

MAX_MESSAGE = 512


class Keeper:
    """Per-daemon state of the routing plugin."""

    def __init__(self) -> None:
        self.steps: dict[str, Step] = {}
        self.busy: set[str] = set()
        self.stale: set[str] = set()
        self.profiles: dict[str, Profile] = {}  # by profile name
        self.sock: socket.socket | None = None
        self.context: PluginContext | None = None

    # -- life -------------------------------------------------------------------------------------

    def start(self, context: PluginContext) -> None:
        self.context = context
        names = rt_tables()
        sections = context.config.section("routing").get("profiles", {})
        self.profiles = {name: from_section(name, section, names) for name, section in sections.items()}
        path = notify_path(context.config)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        sock.bind(str(path))
        os.chmod(path, 0o600)
        self.sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self.read_notifications)

    def stop(self) -> None:
        if self.sock is not None and self.context is not None:
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(notify_path(self.context.config))

    # -- the hook's messages ------------------------------------------------------------------------

    def read_notifications(self) -> None:
        """Drain the hook's datagrams (also called before judging a removal: see ``policy_removed``)."""
        while self.sock is not None:
            try:
                data = self.sock.recv(MAX_MESSAGE)
            except BlockingIOError:
                return
            self.heard(data.decode("ascii", "replace").split())

    def profile_for(self, interface: str) -> Profile | None:
        assert self.context is not None
        spec = self.context.config.interface(interface)
        if spec is None or spec.role != "tunnel" or not spec.routing_profile:
            return None
        return self.profiles.get(spec.routing_profile)

    def heard(self, words: list[str]) -> None:
        if len(words) < 3 or self.profile_for(words[1]) is None:
            return
        verb, interface, state = words[:3]
        if verb == "begin":
            self.busy.add(interface)
            return
        self.busy.discard(interface)
        if state == "up" and len(words) == 6:
            mtu = int(words[5]) if words[5].isdigit() else None
            self.steps[interface] = Step("up", interface, words[3], words[4], mtu)
            self.stale.discard(interface)
            move = self.context.current_move if self.context else None
            if move is not None:
                move.phase("routes-applied")
        else:
            self.stale.add(interface)

    # -- re-asserting -------------------------------------------------------------------------------

    def policy_removed(self) -> None:
        self.read_notifications()
        assert self.context is not None
        for interface, step in self.steps.items():
            profile = self.profile_for(interface)
            if interface in self.busy or interface in self.stale or profile is None:
                continue
            try:
                applied = kernel.converge(interface, profile, end_state(profile, step))
            except (kernel.InterfaceMissing, kernel.ApplyError) as error:
                self.context.log.warning("cannot restore %s's routing: %s", interface, error)
                continue
            if applied:
                self.context.counters["routing_reasserts"] += 1
                self.context.log.info("restored %s's routing: %s", interface, "; ".join(map(repr, applied)))

    def mark_stale(self, interfaces: list[str] | None = None) -> None:
        """Nothing to defend until the hook brings the tunnel up again."""
        self.stale.update(self.steps if interfaces is None else interfaces)


def notify_path(config: Config) -> Path:
    return config.daemon.control_socket.parent / NOTIFY_NAME


def watched_tables(config: Config) -> list[int]:
    names = rt_tables()
    profiles: Mapping[str, Any] = config.section("routing").get("profiles", {})
    tables = (resolve_table(profile.get("table"), names) for profile in profiles.values())
    return [table for table in tables if table is not None]
