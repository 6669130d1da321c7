"""One report for every golden check: a row per tensor, then `golden NAME: PASS n/n` or FAIL k/n.

The relative error of a row is max|a - b| / max|b|, the contract of `icmh golden-check`.
"""

import dataclasses
import sys
from typing import TextIO

import numpy as np


@dataclasses.dataclass(frozen=True)
class Row:
  name: str
  max_abs: float
  rel: float
  passed: bool
  note: str = ""


class GoldenReport:
  """Collects comparisons and prints them.

  Args:
    name: the golden set's family (`tcm`, `icmh_ff`, `sam`), printed on the last line.
  """

  def __init__(self, name: str):
    self.name = name
    self.rows: list[Row] = []

  def close(self, key: str, actual, expected, rtol: float = 1e-4, note: str = "") -> Row:
    """Float tensors: passes when max|a - b| <= rtol * max|b| (and shapes agree); `note` is
    printed beside the row."""
    a = np.asarray(actual, np.float64)
    b = np.asarray(expected, np.float64)
    if a.shape != b.shape:
      return self._add(Row(key, np.inf, np.inf, False, f"shape {a.shape} != {b.shape}"))
    if not np.all(np.isfinite(a)):
      return self._add(Row(key, np.inf, np.inf, False, "non-finite values"))
    max_abs = float(np.max(np.abs(a - b))) if a.size else 0.0
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    rel = max_abs / scale if scale > 0 else max_abs
    return self._add(Row(key, max_abs, rel, rel <= rtol, note))

  def exact(self, key: str, actual, expected) -> Row:
    """Integer tensors (symbols, indexes): passes only on equality; the note counts mismatches."""
    a, b = np.asarray(actual), np.asarray(expected)
    if a.shape != b.shape:
      return self._add(Row(key, np.inf, np.inf, False, f"shape {a.shape} != {b.shape}"))
    diff = int(np.sum(a.astype(np.int64) != b.astype(np.int64)))
    max_abs = float(np.max(np.abs(a.astype(np.int64) - b.astype(np.int64)))) if a.size else 0.0
    return self._add(Row(key, max_abs, 0.0 if diff == 0 else 1.0, diff == 0,
                         f"{diff} of {a.size} differ" if diff else "exact"))

  def check(self, key: str, passed: bool, note: str = "") -> Row:
    """A non-tensor criterion (counts, fractions), reported with its own note."""
    return self._add(Row(key, float("nan"), float("nan"), bool(passed), note))

  def _add(self, row: Row) -> Row:
    self.rows.append(row)
    return row

  @property
  def passed(self) -> bool:
    return bool(self.rows) and all(r.passed for r in self.rows)

  def print(self, out: TextIO | None = None) -> None:
    out = out or sys.stdout  # looked up per call, so a redirected stdout (pytest capture) is used
    width = max([len(r.name) for r in self.rows] + [6])
    print(f"{'tensor':<{width}}  {'max_abs':>10}  {'rel':>10}  result", file=out)
    for r in self.rows:
      print(f"{r.name:<{width}}  {r.max_abs:>10.3g}  {r.rel:>10.3g}  "
            f"{'pass' if r.passed else 'FAIL'}{'  ' + r.note if r.note else ''}", file=out)
    n, k = len(self.rows), sum(not r.passed for r in self.rows)
    line = f"golden {self.name}: PASS {n}/{n}" if self.passed else f"golden {self.name}: FAIL {k}/{n}"
    print(line, file=out)
