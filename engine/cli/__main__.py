"""``python -m nodeforge.engine.cli``: the ``nodeforge`` command."""

import sys

from nodeforge.engine.cli.main import main

sys.exit(main())
