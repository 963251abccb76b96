"""A stand-in for a network price service."""

import asyncio


class PriceFeed:
    def __init__(self, prices, delay=0.0):
        self._prices = dict(prices)
        self._delay = delay
        self.requests = 0

    async def price(self, symbol):
        """The latest price of `symbol`; KeyError for an unknown symbol."""
        self.requests += 1
        await asyncio.sleep(self._delay)
        return self._prices[symbol]
