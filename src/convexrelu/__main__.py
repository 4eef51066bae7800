"""``python -m convexrelu``: the command-line tool (:mod:`convexrelu.cli`)."""

from .cli import main

raise SystemExit(main())
