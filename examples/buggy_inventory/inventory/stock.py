"""How many of each product are on the shelves."""


class OutOfStock(Exception):
    """Raised when removing more units than are in stock."""


class Inventory:
    def __init__(self):
        self._counts = {}

    def count(self, product):
        """Units of `product` in stock (0 for an unknown product)."""
        return self._counts.get(product, 0)

    def products(self):
        return sorted(self._counts)

    def add(self, product, quantity):
        """Put `quantity` units of `product` on the shelves."""
        if quantity <= 0:
            raise ValueError("quantity must be positive")
        self._counts[product] = self.count(product) + quantity

    def remove(self, product, quantity):
        """Take `quantity` units of `product` off the shelves (e.g. when they are sold)."""
        if quantity > self.count(product):
            raise OutOfStock(f"only {self.count(product)} {product} left, cannot remove {quantity}")
        self._counts[product] = self.count(product) + quantity
