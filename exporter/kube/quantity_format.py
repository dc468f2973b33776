"""Numbers written as Kubernetes quantities (``"250m"``, ``"4"``, ``"1500k"``).

The custom metrics API carries ``value`` as a ``resource.Quantity`` string; the HPA
reads it with ``MilliValue()``. Values are rounded to nano units and written in the
canonical decimal form (the largest SI suffix that keeps the mantissa an integer), as
apimachinery prints them.
"""

from __future__ import annotations

import math
from decimal import Decimal

_SUFFIXES = ((18, "E"), (15, "P"), (12, "T"), (9, "G"), (6, "M"), (3, "k"), (0, ""))
_SUB_UNIT = ((-3, "m"), (-6, "u"), (-9, "n"))


def format_quantity(value: float | int | Decimal) -> str:
    """Canonical decimal quantity of ``value``, exact to 1e-9."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"a quantity must be finite, not {value}")
    nanos = int(Decimal(str(value)).scaleb(9).to_integral_value())
    if nanos == 0:
        return "0"
    sign = "-" if nanos < 0 else ""
    nanos = abs(nanos)
    if nanos % 10**9 == 0:
        whole = nanos // 10**9
        for exp, suffix in _SUFFIXES:
            if whole % 10**exp == 0:
                return f"{sign}{whole // 10**exp}{suffix}"
    for exp, suffix in _SUB_UNIT:
        unit = 10 ** (exp + 9)
        if nanos % unit == 0:
            return f"{sign}{nanos // unit}{suffix}"
    raise AssertionError("nano units always divide")
