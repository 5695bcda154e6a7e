"""``python -m sweetspot.cli``: how `sweetspot run --workers N` starts its workers."""

import sys

from sweetspot.cli import main

sys.exit(main())
