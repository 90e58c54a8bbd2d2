"""``release-bot playground``: the real bot driven from a terminal, with a stand-in for Slack on loopback, the
payloads a person's typing becomes, and the text rendering of Block Kit messages.

May import: anything but the CLI. Nothing on ``serve``'s path imports it.
"""
