"""``python -m gradgroup`` runs the CLI."""

import sys

from gradgroup.cli import main

sys.exit(main())
