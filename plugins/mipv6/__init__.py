"""Built-in plugin ``mipv6``: stale care-of address purge, expected care-of address, confirmed handover.

``plugin`` holds the hooks and the ``[mipv6]`` contract; ``purge`` deletes the dead care-of address,
``coa`` predicts mip6d's choice, ``handover`` judges what ``capture`` hears (``mobility`` parses
it), ``xfrm`` reads what mip6d changes in the kernel when its signalling is IPsec-protected,
``environment`` and ``mip6d_conf`` say whether this node can run Mobile IPv6 as configured.
"""
