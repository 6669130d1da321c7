import sys

from icmh_jax.cli import main

sys.exit(main())
