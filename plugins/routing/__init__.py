"""Built-in plugin ``routing``: a tunnel's routing/MTU policy as data (miredo's client-hook).

The package is kept light on purpose: miredo's client hook imports ``profile``, ``endstate`` and
``kernel`` in a fresh interpreter on every tunnel change.  The pluggy plugin lives in ``plugin``.
"""
