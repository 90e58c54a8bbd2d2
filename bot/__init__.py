"""release-bot: a Slack bot that runs a team's deployment checklist as an audited, time-aware workflow."""

__version__ = "0.1.0"
