"""``python -m engine``: the same as the ``switchboard`` command."""

import sys

from engine.cli import main

sys.exit(main())
