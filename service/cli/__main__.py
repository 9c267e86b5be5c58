"""`python -m service.cli`: the `callrate` command."""

import sys

from service.cli import main

sys.exit(main())
