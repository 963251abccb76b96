"""Stock levels loaded from CSV-like rows."""


def load_items(rows):
    """Turn (sku, name, quantity) rows into {sku: {"name": ..., "quantity": int}}."""
    items = {}
    for sku, name, quantity in rows:
        items[sku] = {"name": name.strip(), "quantity": int(quantity)}
    return items


def restock_needed(items, minimum):
    """The SKUs whose quantity is below `minimum`, sorted."""
    return sorted(sku for sku, item in items.items() if item["qty"] < minimum)


def total_units(items):
    return sum(item["quantity"] for item in items.values())
