"""`python -m lsp_server [--tcp HOST:PORT]`: the same as `ledex serve`."""

from __future__ import annotations

import argparse

from lsp_server.server import start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m lsp_server", description="the ledex language server"
    )
    parser.add_argument(
        "--tcp", metavar="HOST:PORT", help="serve over TCP instead of stdio (for debugging)"
    )
    parser.add_argument("--stdio", action="store_true", help="serve over stdio (the default)")
    args = parser.parse_args(argv)
    start(args.tcp)


if __name__ == "__main__":
    main()
