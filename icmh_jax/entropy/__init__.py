"""icmh_jax.entropy: entropy models (factorized prior, Gaussian conditional), integer probability
tables, exact range coding on constriction, and the `.icmh` container.

Import the submodules: `bounds`, `gaussian`, `factorized` (pure JAX), `tables`, `coder`,
`container` (numpy / constriction, outside jit).
"""
