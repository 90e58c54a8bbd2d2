"""The Slack surface: the Bolt app, listeners, Block Kit rendering and the outbound Web API gateway."""
