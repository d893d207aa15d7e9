"""Built-in plugin ``teredo``: re-qualify miredo the moment a move completes, never when it hurts.

``plugin`` holds the hooks and the ``[teredo]`` contract, ``requalify`` the rules of when to kick,
``supervisor`` the safe way to signal miredo, ``miredo_conf`` what miredo's own file says.
"""
