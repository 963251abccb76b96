import pytest

from shop import Cart


def make_cart(discount=0):
    cart = Cart(discount_percent=discount)
    cart.add("pen", 2.50, quantity=4)
    cart.add("notebook", 10.00)
    return cart


def test_subtotal():
    assert make_cart().subtotal() == 20.0


def test_total_without_discount():
    assert make_cart().total() == 24.0


def test_total_with_discount():
    assert make_cart(discount=25).total() == 18.0


def test_discount_out_of_range():
    with pytest.raises(ValueError):
        make_cart(discount=120).total()
