from warehouse.stock import load_items, restock_needed, total_units

ROWS = [
    ("B-2", "bolts", "120"),
    ("N-7", "nuts", "8"),
    ("W-1", " washers ", "3"),
]


def test_load_items():
    items = load_items(ROWS)
    assert items["W-1"] == {"name": "washers", "quantity": 3}


def test_total_units():
    assert total_units(load_items(ROWS)) == 131


def test_restock_needed():
    assert restock_needed(load_items(ROWS), minimum=10) == ["N-7", "W-1"]


def test_restock_needed_no_items():
    assert restock_needed({}, minimum=10) == []
