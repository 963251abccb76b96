"""A tiny stock-keeping package with one bug, for `ledex fix` to find and fix."""

from .report import low_stock, stock_report
from .stock import Inventory, OutOfStock

__all__ = ["Inventory", "OutOfStock", "low_stock", "stock_report"]
