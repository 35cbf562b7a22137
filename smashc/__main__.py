"""``python -m smashc``: the command-line interface."""

from smashc.cli import main

raise SystemExit(main())
