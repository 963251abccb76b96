"""Valuing a portfolio with concurrent price lookups."""

import asyncio


async def portfolio_value(holdings, feed):
    """Total value of {symbol: quantity} holdings, fetching all prices concurrently."""
    symbols = list(holdings)
    prices = await asyncio.gather(*(feed.price(symbol) for symbol in symbols))
    return round(sum(price * quantity for price, quantity in zip(prices, symbols)), 2)
