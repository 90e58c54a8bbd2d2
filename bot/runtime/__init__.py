"""The machinery that runs the product: the composition root (``bootstrap.build``, the only place that picks
adapters and wires them to the use cases and the Slack app), the HTTP server and Socket Mode, the work process and
its hand-off pipe, the ack gate, leader election, the clock that fires timers, and the wiring of the watch and the
dashboard.

May import: everything in ``bot`` but the playground and the CLI.
"""
