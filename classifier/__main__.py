"""`python -m classifier <command>`: the command line of classifier.cli, as the installed `classifier` runs it."""

import sys

from classifier.cli import main

sys.exit(main())
