"""The ledex language server (pygls 2.x): failing tests as diagnostics, "Explain and fix" quick-fixes.

A thin layer over `ledex.repair` and `ledex.sandbox`; started by `ledex serve`.
"""
