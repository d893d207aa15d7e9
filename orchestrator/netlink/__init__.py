"""The netlink layer: everything that speaks rtnetlink, and nothing that knows what a change means.

``wire``     the wire format: constants, struct layouts, request building, attribute walking, one
             request/answer exchange.  Imports nothing heavy: miredo's client hook loads it in a
             bare ``python -I -S`` on every tunnel change.
``decode``   datagrams into the engine's raw events (``orchestrator.events``), header first.
``queries``  the event socket, the dump requests, and the one-off questions the state asks.
``source``   ``NetlinkSource``: bind, dump, stream; on overrun a new socket, a new dump, the difference.

This package imports nothing on its own (``wire`` must stay cheap); plugins reach ``wire`` through
the public API (``from orchestrator import wire``).
"""
