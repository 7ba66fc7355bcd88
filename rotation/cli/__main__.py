"""``python -m rotation.cli``: the ``certrotate`` command line, without the console script."""

import sys

from rotation.cli import main

sys.exit(main())
