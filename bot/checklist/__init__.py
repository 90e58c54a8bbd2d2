"""The checklist file: its schema (bot.checklist.schema), loading with errors that name the file, line and field, and the
summary that ``release-bot checklist check`` prints. A loaded file becomes a ``bot.domain.checklist.Checklist``.

May import: the domain, ``bot.errors`` and YAML. Nothing above it (use cases, Slack, runtime).
"""
