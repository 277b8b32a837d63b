"""``python -m amaml_lab.bench ...`` is ``amaml-lab bench ...``."""

import sys

from ..cli import main

sys.exit(main(["bench", *sys.argv[1:]]))
