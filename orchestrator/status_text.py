"""``orchestrator status`` for a person: every value in the words a user configured it with (``true``,
not ``True``; unset shown as unset), nested plugin status as indented lines rather than Python
reprs, and the last moves as a timeline, one line each, its phases spaced by how long they took.
"""

from __future__ import annotations

import time
from typing import Any

from .events import Uplink

TIMELINE_WIDTH = 72  # characters the phases of one move share, beyond their labels
MOVES_SHOWN = 5
#: Phase labels in a timeline: short, as a person scanning many lines reads them.
SHORT = {
    "requalify-sent": "requalify",
    "routes-applied": "routes",
    "coa-purged": "purged",
    "bu-sent": "bu",
    "handover-confirmed": "confirmed",
}


def value_text(value: Any) -> str:
    """One value as a user reads it in the TOML: ``true``/``false``, ``(unset)`` for None."""
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value == "":
        return '""'
    return str(value)


def nested_lines(value: Any, indent: str) -> list[str]:
    """A plugin's status: a table as ``key: value`` lines, a list as ``- item`` lines, nested."""
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines += [f"{indent}{key}:", *nested_lines(item, indent + "  ")]
            else:
                lines.append(f"{indent}{key}: {value_text(item) if item != [] and item != {} else '(none)'}")
        return lines
    if isinstance(value, list):
        return [line for item in value for line in _item_lines(item, indent)]
    return [f"{indent}{value_text(value)}"]


def _item_lines(item: Any, indent: str) -> list[str]:
    if isinstance(item, (dict, list)):
        inner = nested_lines(item, indent + "  ")
        return [f"{indent}- {inner[0].strip()}", *inner[1:]] if inner else [f"{indent}- (none)"]
    return [f"{indent}- {value_text(item)}"]


def uplink_text(uplink: dict[str, Any] | None) -> str:
    """An uplink of the status answer, as the daemon's log shows it (without the gateway's MAC)."""
    if uplink is None:
        return "none"
    return Uplink(uplink["interface"], uplink["address"], uplink["gateway"]).describe()


def timeline(move: dict[str, Any]) -> str:
    """``12:03:41 eth0 → wlan0 ok 88 ms |detected 0.2|requalify 0.9|tunnel-up 77······|...|``: each
    phase's segment as wide as the time it took after the previous one (its label and time since the
    move began, in ms); ``end`` when the move ended well after its last phase."""
    old, new = move["old"], move["new"]
    route = f"{old['interface'] if old else 'none'} → {new['interface'] if new else 'none'}"
    phases = {name: seconds for name, seconds in move["phases"].items() if name != "finished"}
    total = move["phases"].get("finished")
    outcome = move["outcome"] or "in progress"
    head = f"{time.strftime('%H:%M:%S', time.localtime(move['started']))} {route} {outcome}"
    if total is not None:
        head += f" {_ms(total)} ms"
    span = max([total or 0.0, *phases.values()]) or 1.0
    if total is not None and total - max(phases.values(), default=0.0) >= 0.001:
        phases["end"] = total  # the time after the last phase, until the move ended (a timeout's wait)
    segments, before = [], 0.0
    for name, seconds in phases.items():
        label = f"{SHORT.get(name, name)} {_ms(seconds)}"
        width = round((seconds - before) / span * TIMELINE_WIDTH)
        segments.append(label + "·" * max(0, width - len(label)))
        before = seconds
    bar = "|" + "|".join(segments) + "|" if segments else ""
    return f"{head} {bar}".rstrip()


def _ms(seconds: float) -> str:
    """Milliseconds with the precision that matters: 0.2, 0.9, 77, 1530."""
    milliseconds = seconds * 1000
    return f"{milliseconds:.1f}" if milliseconds < 10 else f"{milliseconds:.0f}"


def human_status(status: dict[str, Any]) -> str:
    lines = ["uplink:   " + uplink_text(status["uplink"])]
    lines += [f"standby:  {uplink_text(u)}" for u in status.get("uplinks", []) if u["role"] == "standby"]
    for name, address in status["tunnels"].items():
        lines.append(f"tunnel:   {name} {address or '(no address)'}")
    if status.get("reload_problem"):
        lines.append(f"config:   {status['reload_problem']} (the running policy stays)")
    watchdog = status.get("watchdog")
    if watchdog:
        state = f"withheld: {watchdog['withheld']}" if watchdog["withheld"] else "pinging"
        lines.append(f"watchdog: every {watchdog['interval_s']:g} s, {state}")
    metrics = status.get("metrics")
    if metrics:
        for key in ("listen", "textfile"):
            if metrics[key]:
                problem = metrics[f"{key}_problem"]
                lines.append(f"metrics:  {key} {metrics[key]}" + (f" ({problem})" if problem else ""))
    counters = status["counters"]
    lines.append("counters: " + ", ".join(f"{k}={v}" for k, v in sorted(counters.items())))
    for plugin in status["plugins"]:
        error = f" ({plugin['error']})" if plugin["error"] else ""
        stuck = plugin.get("stuck_threads")
        held = f", holds {stuck} threads that never returned" if stuck else ""
        lines.append(f"plugin:   {plugin['name']} [{plugin['state']}{held}] from {plugin['source']}{error}")
        lines += nested_lines(plugin.get("status", {}), "          ")
    moves = status["moves"][-MOVES_SHOWN:]
    if moves:
        lines.append("moves:")
    for move in moves:
        lines.append("  " + timeline(move))
        lines += [f"    problem: {problem}" for problem in move["problems"]]
    return "\n".join(lines)
