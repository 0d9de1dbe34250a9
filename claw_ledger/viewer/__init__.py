"""Trust Pulse: the reviewer's pages, served by ``claw-ledger serve`` (no build step).

Server-rendered HTML (Jinja2, autoescaped) over the same reads as the API.
Links are stable: ``/pulse/{id}`` for a published record, ``/pulse/runs/{job}``
for a run. Pages need a key of role ``reader`` or higher, sent as a bearer
token or kept in an HttpOnly cookie by the login form.
"""

from claw_ledger.viewer.pages import COOKIE_NAME, ViewerBackend, viewer_router

__all__ = ["COOKIE_NAME", "ViewerBackend", "viewer_router"]
