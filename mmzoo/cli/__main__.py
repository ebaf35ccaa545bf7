"""`python -m mmzoo.cli`: the `mmzoo` command."""

import sys

from mmzoo.cli import main

sys.exit(main())
