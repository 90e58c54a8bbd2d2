"""``python -m bot`` is the ``release-bot`` command."""

from bot.cli import main

raise SystemExit(main())
