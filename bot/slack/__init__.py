"""The Slack surface: the Bolt app, thin listeners (ack, parse, one use-case call, render), pure Block Kit
renderers and charts, the ids of every action and block, and the Web API gateway with its pacing and sync.

May import: the use cases, the domain, ``bot.checklist``, ``bot.i18n``, the root modules, Bolt, the Slack SDK and
matplotlib. Never the database (it reads and writes through the use cases), an adapter or ``bot.runtime``.
"""
