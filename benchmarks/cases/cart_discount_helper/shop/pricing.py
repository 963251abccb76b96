"""Price rules shared by the cart and the invoices."""

TAX_RATE = 0.2


def apply_discount(price, percent):
    """The price after taking `percent` percent off."""
    if not 0 <= percent <= 100:
        raise ValueError(f"discount out of range: {percent}")
    return price * percent / 100


def with_tax(price):
    """The price with VAT added, rounded to cents."""
    return round(price * (1 + TAX_RATE), 2)
