"""Kubernetes resource quantities (``250m``, ``1``, ``128Mi``, ``1G``, ``1e3``) as integers.

Requests and limits arrive as quantity strings. Parsing is the official client's
(``kubernetes.utils.quantity``); this module adds what it leaves out: the units the
exporter compares with kernel counters (millicores, bytes), rounding up like the API
server's ``MilliValue``/``Value``, and refusing values no resource can have (infinite,
beyond int64) before they reach arithmetic.
"""

from __future__ import annotations

import math
from decimal import Decimal

from kubernetes.utils.quantity import parse_quantity as _parse

_INT64_MAX = Decimal(2**63 - 1)


class QuantityError(ValueError):
    """A string that is not a usable Kubernetes quantity."""


def parse_quantity(text: str | int | float) -> Decimal:
    """The exact value of a quantity (``"128Mi"`` -> 134217728)."""
    try:
        value: Decimal = _parse(text)  # type: ignore[no-untyped-call]
    except (ValueError, TypeError, ArithmeticError) as err:
        raise QuantityError(f"not a Kubernetes quantity: {text!r}") from err
    if not value.is_finite() or abs(value) > _INT64_MAX:
        raise QuantityError(f"quantity out of range: {text!r}")
    return value


def millicores(text: str | int | float) -> int:
    """CPU in millicores, rounded up (``"250m"`` -> 250, ``"0.1"`` -> 100)."""
    return math.ceil(parse_quantity(text) * 1000)


def byte_count(text: str | int | float) -> int:
    """Memory in bytes, rounded up (``"1G"`` -> 10**9, ``"1Gi"`` -> 2**30)."""
    return math.ceil(parse_quantity(text))
