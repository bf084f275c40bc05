"""`python -m labrunner.cli`: the same as the labrunner command."""
import sys

from . import main

sys.exit(main())
