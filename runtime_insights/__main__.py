"""``python -m runtime_insights``: the same as the ``runtime-insights`` command."""

import sys

from runtime_insights.cli import main

sys.exit(main())
