"""Built-in plugin ``exec``: run existing scripts on the daemon's events, without writing Python.

``scripts`` holds the ``[[exec]]`` contract (which events, which interfaces, the argv, the timeout),
``environment`` turns an event into the variables a script reads, ``runner`` runs the scripts of
one lane one after the other with a timeout that kills the process group, and ``plugin`` the hooks.
"""
