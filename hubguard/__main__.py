"""Allow ``python -m hubguard``, which behaves exactly like the ``hubguard`` command."""

from hubguard.cli import main

raise SystemExit(main())
