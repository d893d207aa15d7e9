"""Prometheus metrics: what the daemon counts and times, in the exposition format a fleet scrapes.

``registry`` builds the metrics from the daemon's own counters, moves and network state when asked
(nothing is copied on the event path but the phase timings); ``listener`` serves ``/metrics`` from
the daemon's event loop, so an idle daemon has no extra wake-up and no thread; ``textfile`` writes
the same text for node_exporter's textfile collector, atomically and at most once a second.
``prometheus-client`` (the official library) owns the registry and the format; it is imported
only when ``[metrics]`` enables something.
"""
