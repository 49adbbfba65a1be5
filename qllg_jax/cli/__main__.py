"""``python -m qllg_jax.cli …`` — the same as the ``qllg`` command."""

import sys

from . import main

sys.exit(main())
