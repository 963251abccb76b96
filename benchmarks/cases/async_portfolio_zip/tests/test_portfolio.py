import asyncio

import pytest

from quotes.feed import PriceFeed
from quotes.portfolio import portfolio_value

PRICES = {"ACME": 12.5, "GLOBX": 3.25, "INITECH": 40.0}


def test_feed_price():
    assert asyncio.run(PriceFeed(PRICES).price("ACME")) == 12.5


def test_portfolio_value():
    holdings = {"ACME": 4, "GLOBX": 10, "INITECH": 1}
    assert asyncio.run(portfolio_value(holdings, PriceFeed(PRICES))) == 122.5


def test_empty_portfolio():
    assert asyncio.run(portfolio_value({}, PriceFeed(PRICES))) == 0


def test_unknown_symbol():
    with pytest.raises(KeyError):
        asyncio.run(portfolio_value({"NOPE": 1}, PriceFeed(PRICES)))
