"""Reports about an Inventory."""


def low_stock(inventory, threshold=5):
    """Products with fewer than `threshold` units left, alphabetically."""
    return [name for name in inventory.products() if inventory.count(name) < threshold]


def stock_report(inventory):
    """One 'product: units' line per product, alphabetically."""
    return [f"{name}: {inventory.count(name)}" for name in inventory.products()]
