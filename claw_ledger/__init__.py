"""claw-ledger application layer: CLI, services, storage (the edges around ``ledger``)."""

__all__: list[str] = []
