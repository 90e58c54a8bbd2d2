"""The pure release domain: checklist, release state machine and canary analysis (stdlib only)."""
