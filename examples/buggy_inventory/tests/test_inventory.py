import pytest

from inventory import Inventory, OutOfStock, low_stock, stock_report


def make_inventory():
    inventory = Inventory()
    inventory.add("apples", 10)
    inventory.add("pears", 3)
    return inventory


def test_add_increases_count():
    inventory = make_inventory()
    inventory.add("apples", 5)
    assert inventory.count("apples") == 15


def test_remove_decreases_count():
    inventory = make_inventory()
    inventory.remove("apples", 4)
    assert inventory.count("apples") == 6


def test_cannot_remove_more_than_in_stock():
    with pytest.raises(OutOfStock):
        make_inventory().remove("pears", 4)


def test_reports():
    inventory = make_inventory()
    assert low_stock(inventory) == ["pears"]
    assert stock_report(inventory) == ["apples: 10", "pears: 3"]
