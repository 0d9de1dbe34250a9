"""``python -m ledger.types``: the markdown table of event types, from the registry."""

from __future__ import annotations

from ledger.registry import markdown_table
from ledger.types import REGISTRY


def main() -> None:
    print(markdown_table(REGISTRY))


if __name__ == "__main__":
    main()
