"""A shopping cart."""

from dataclasses import dataclass, field

from .pricing import apply_discount, with_tax


@dataclass
class Line:
    sku: str
    unit_price: float
    quantity: int = 1

    def subtotal(self):
        return self.unit_price * self.quantity


@dataclass
class Cart:
    lines: list = field(default_factory=list)
    discount_percent: float = 0

    def add(self, sku, unit_price, quantity=1):
        self.lines.append(Line(sku, unit_price, quantity))

    def subtotal(self):
        return sum(line.subtotal() for line in self.lines)

    def total(self):
        """What the customer pays: subtotal, minus the discount, plus tax."""
        discounted = apply_discount(self.subtotal(), self.discount_percent)
        return with_tax(discounted)
