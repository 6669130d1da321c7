"""`make demo`: the end-to-end tiny study (being built; see issue 9)."""

import sys


def main() -> int:
  print("icmh demo: the end-to-end study is not built yet; run `make test` for the test suite.")
  return 0


if __name__ == "__main__":
  sys.exit(main())
