"""``python -m factorgym.app.cli``: the command line."""

import sys

from factorgym.app.cli import main

sys.exit(main())
