"""`python -m icmh_jax.cli ...`: the `icmh` command."""

import sys

from icmh_jax.cli import main

sys.exit(main())
