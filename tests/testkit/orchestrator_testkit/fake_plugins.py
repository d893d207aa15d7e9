"""Plugin objects for discovery tests, loaded through entry points that name them."""

from __future__ import annotations

from typing import Any

from orchestrator import Key, Section, hookimpl

SHARED = {"shared": Section({"x": Key("int", "a number", 1)})}


class CoreThief:
    @hookimpl
    def orchestrator_config_schema(self) -> Any:
        return {"daemon": Section({})}


class ClashA:
    @hookimpl
    def orchestrator_config_schema(self) -> Any:
        return SHARED


class ClashB(ClashA):
    pass


class Wrapper:
    @hookimpl(wrapper=True)
    def orchestrator_uplink_changed(self) -> Any:
        return (yield)


class UnknownHook:
    @hookimpl
    def orchestrator_no_such_hook(self) -> None:
        """Misspelt: pluggy's check_pending rejects it."""


class WrongSignature:
    @hookimpl
    def orchestrator_uplink_changed(self, event: Any, moov: Any) -> None:
        """``moov`` is no argument of the hook: pluggy refuses the plugin when it is registered."""


class AnswersWithACoroutine:
    """An ``async def`` answer to a question answered at once: nothing would await it."""

    @hookimpl
    async def orchestrator_expected_coa(self) -> Any:
        return "2001:db8::1"


class MisspeltKind:
    @hookimpl
    def orchestrator_config_schema(self) -> Any:
        return {"strange": Section({"name": Key("strng", "a name")})}


class NotASection:
    @hookimpl
    def orchestrator_config_schema(self) -> Any:
        return {"loose": {"name": Key("str", "a name")}}


class NotAKey:
    @hookimpl
    def orchestrator_config_schema(self) -> Any:
        return {"odd": Section({"size": Key("int", "a size")}, tables={"items": Section({"name": "str"})})}


class Declares:
    """Declares interfaces and address prefixes: ``entries`` and ``prefixes`` are what it returns
    (a test sets them)."""

    def __init__(self) -> None:
        self.entries: Any = []
        self.prefixes: Any = {}

    @hookimpl
    def orchestrator_address_prefixes(self) -> Any:
        return self.prefixes

    @hookimpl
    def orchestrator_interfaces(self) -> Any:
        if isinstance(self.entries, Exception):
            raise self.entries
        return self.entries


core_thief, clash_a, clash_b, declares = CoreThief(), ClashA(), ClashB(), Declares()
wrapper, unknown_hook, wrong_signature = Wrapper(), UnknownHook(), WrongSignature()
async_answer, misspelt_kind, not_a_section, not_a_key = (
    AnswersWithACoroutine(), MisspeltKind(), NotASection(), NotAKey()
)
