"""Adapters: the ports of ``bot.ports`` implemented against real systems (Prometheus, PagerDuty, Kubernetes)."""
