"""Money at the edges: `Decimal` and strings in, integer minor units inside.

Extra precision is refused, never rounded: a lost cent becomes a reconciliation exception.
"""

from __future__ import annotations

from decimal import Decimal, Inexact, InvalidOperation, localcontext

from config.errors import InvalidAmount, UnknownCurrency

# ISO 4217 minor-unit exponents for the currencies a program may run in.
CURRENCY_EXPONENTS: dict[str, int] = {
    "USD": 2, "EUR": 2, "GBP": 2, "PLN": 2, "CAD": 2, "AUD": 2, "CHF": 2, "SEK": 2, "NOK": 2,
    "DKK": 2, "CZK": 2, "HUF": 2, "MXN": 2, "BRL": 2, "SGD": 2, "HKD": 2, "NZD": 2, "ZAR": 2,
    "INR": 2, "JPY": 0, "KRW": 0, "ISK": 0, "CLP": 0, "VND": 0, "KWD": 3, "BHD": 3, "JOD": 3,
    "OMR": 3, "TND": 3,
}  # fmt: skip
MAX_MINOR = 10**15  # far below BIGINT's 9.2e18, and exact in a Lua double (2**53)


def currency_exponent(currency_code: str) -> int:
    """Digits after the decimal point for `currency_code`; refuses unknown codes."""
    try:
        return CURRENCY_EXPONENTS[currency_code]
    except (KeyError, TypeError):
        raise UnknownCurrency(f"{currency_code!r} is not a currency we support") from None


def to_minor(amount: Decimal | str | int, currency_code: str) -> int:
    """Edge value -> minor units. "12.34" USD is 1234; "1.005" USD is refused, not rounded."""
    if isinstance(amount, float | bool):
        raise InvalidAmount("money is never a float")
    exponent = currency_exponent(currency_code)
    try:
        with localcontext(traps=[Inexact, InvalidOperation]):  # signal instead of rounding
            minor = Decimal(amount).scaleb(exponent).to_integral_exact()
    except Inexact:
        raise InvalidAmount(f"{amount} has more decimals than {currency_code} allows") from None
    except (ArithmeticError, ValueError, TypeError):
        raise InvalidAmount(f"{amount!r} is not a number") from None
    if not minor.is_finite() or abs(minor) >= MAX_MINOR:
        raise InvalidAmount(f"{amount} is out of range")
    return int(minor)


def to_decimal(amount_minor: int, currency_code: str) -> Decimal:
    """Minor units -> `Decimal` with the currency's exponent: 1234 USD is Decimal("12.34")."""
    exponent = currency_exponent(currency_code)
    return Decimal(amount_minor).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent))


def format_money(amount_minor: int, currency_code: str) -> str:
    """For people: "12.34 USD", "-5.00 USD"."""
    return f"{to_decimal(amount_minor, currency_code)} {currency_code}"
