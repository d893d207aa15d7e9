"""A timing measured by a real-kernel test, kept where a reader finds it.

Why: those tests assert on the order of events, never on elapsed time (a loaded machine would make
them flaky); the figures still matter, so each one goes to the junit report (``record_property``)
and, with ``pytest -s``, to the terminal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def report(record_property: Callable[[str, Any], None], name: str, seconds: float) -> None:
    """Record ``seconds`` as property ``name`` (to the microsecond) and print it in milliseconds."""
    record_property(name, f"{seconds:.6f}")
    print(f"\n{name}: {seconds * 1000:.2f} ms")
