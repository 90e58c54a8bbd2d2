"""The product's rules at work: starting and ticking releases (``releases``), stages and timers (``lifecycle``),
the metric watch and incidents, the PagerDuty outbox, rollbacks, reports and summaries, and the check of each action
against its role (``permissions``). Each call runs in one unit of work and talks to the outside world only through
the ports of ``bot.ports``.

May import: the domain, ``bot.checklist``, ``bot.db``, ``bot.i18n`` and the root modules (``config``, ``errors``,
``observability``, ``ports``). Never a vendor SDK (Slack, Kubernetes, HTTP, PagerDuty, SQLAlchemy), ``bot.slack``,
``bot.adapters`` or ``bot.runtime``.
"""
