"""The ports of ``bot.ports`` implemented against real systems: Prometheus, PagerDuty, Kubernetes and HTTP health
checks. Each translates its vendor's errors into ``bot.errors`` and sets explicit timeouts.

May import: its vendor SDK, ``bot.ports``, ``bot.errors``, the domain and the root modules. Only ``bot.runtime``
(the composition root) imports an adapter.
"""
