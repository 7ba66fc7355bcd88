"""``python -m certrotate_installer install|rollback``: the program the documents run."""

import os
import sys

from .main import main

sys.exit(main(sys.argv, dict(os.environ)))
