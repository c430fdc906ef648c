"""Run as ``python -m facility``."""

import sys

from facility.cli import main

sys.exit(main())
