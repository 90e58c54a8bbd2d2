"""The release domain in plain Python: the checklist and its gates, the release's state machine and stage plan,
incidents, rollbacks, the canary analysis that judges a window of samples against the rollback criteria, and who
may do what (``roles``).

May import: the standard library, ``bot.errors`` and itself. Nothing here knows Slack, a database, a cluster or a
clock: every function takes the time and the facts it needs, so the domain's tests need no fixtures.
"""
