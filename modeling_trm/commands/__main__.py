"""`python -m modeling_trm.commands ...` runs the `trm` command."""

import sys

from . import main

sys.exit(main())
