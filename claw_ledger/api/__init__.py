"""The HTTP API of the ledger (``claw-ledger serve``, ADR 0018, docs/api.md).

FastAPI on uvicorn; imported only by the ``serve`` command and the tests, so
the rest of the CLI never loads a web framework.
"""

from claw_ledger.api.app import ApiConfig, Authorizer, Features, Source, create_app

__all__ = ["ApiConfig", "Authorizer", "Features", "Source", "create_app"]
