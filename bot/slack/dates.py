"""Dates in Slack's ``<!date^…>`` form: each reader sees them in their own time zone, with a UTC fallback."""

from __future__ import annotations

from datetime import datetime


def slack_date(at: datetime, fmt: str = "{date_short_pretty} {time}") -> str:
    fallback = at.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(at.timestamp())}^{fmt}|{fallback}>"
