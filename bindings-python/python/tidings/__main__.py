"""``python -m tidings run MODULE:APP``: the ``tidings`` console script."""

from ._cli import main

raise SystemExit(main())
