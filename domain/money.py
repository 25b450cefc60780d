"""Money: USD amounts as Vercel wants them, exact to the cent, never a float."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import msgspec
from msgspec.structs import force_setattr

from marketplace_provider.domain.errors import Invalid

CENT = Decimal("0.01")


class Money(msgspec.Struct, frozen=True):
    """A USD amount: non-negative, exactly two decimal places. Renders as Vercel wants it: "10.00"."""

    amount: Decimal

    def __post_init__(self) -> None:
        amount = self.amount
        if isinstance(amount, bool) or not isinstance(amount, (Decimal, int)):
            raise Invalid.field("amount", "must be a Decimal (never a float)")
        amount = Decimal(amount)
        if not amount.is_finite() or amount < 0:
            raise Invalid.field("amount", "must be a finite amount of at least 0.00")
        try:
            exact = amount.quantize(CENT)
        except InvalidOperation:
            raise Invalid.field("amount", "is too large") from None
        if exact != amount:
            raise Invalid.field("amount", "must have at most two decimal places")
        force_setattr(self, "amount", exact.copy_abs())  # "-0.00" and "10" both normalised

    @classmethod
    def of(cls, amount: Decimal | int) -> Money:
        return cls(amount)  # type: ignore[arg-type]  # __post_init__ makes an int a Decimal

    @classmethod
    def from_cents(cls, cents: int) -> Money:
        if isinstance(cents, bool) or not isinstance(cents, int):
            raise Invalid.field("cents", "must be an int")
        return cls(Decimal(cents) / 100)

    @property
    def cents(self) -> int:
        return int(self.amount * 100)

    def __add__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        return Money(self.amount + other.amount)

    def __lt__(self, other: Money) -> bool:
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        return self.amount <= other.amount

    def __str__(self) -> str:
        return str(self.amount)


_DIGITS = frozenset("0123456789")


def usd(text: str) -> Money:
    """Money from a decimal string like "10.00" or "10" (no sign, exponent, spaces or third decimal)."""
    whole, dot, cents = text.partition(".") if isinstance(text, str) else ("", "", "")
    if not whole or not set(whole) <= _DIGITS or (dot and not (1 <= len(cents) <= 2 and set(cents) <= _DIGITS)):
        raise Invalid.field("amount", "must be a USD amount like '10.00'")
    return Money(Decimal(text))
