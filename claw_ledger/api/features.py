"""The ledger's own components behind the API's plug-in points (:class:`Features`):
the authorize service, the checkpointer's log, sealed bundles and Trust Pulse
records, and the Trust Pulse pages."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from fastapi import FastAPI

from claw_ledger.api.app import Features, Source
from claw_ledger.api.errors import ApiError
from claw_ledger.authorizing import AuthorizeConfig, AuthorizeService
from claw_ledger.config import Settings
from ledger.authorize import Action, CallRequest
from ledger.crypto import KeyPair
from ledger.errors import ReasonCode

__all__ = ["HttpAuthorizer", "ledger_features", "mount_trust_pulse"]

log = logging.getLogger("claw_ledger.api")


class HttpAuthorizer:
    """``POST /v1/authorize`` over the authorize service: the JSON body is
    ``{"token", "job_id", "action", "nonce"}`` (``action`` as in the decision events)."""

    def __init__(self, service: AuthorizeService) -> None:
        self.service = service

    async def start(self) -> None:
        await self.service.start()
        if (refusal := self.service.recorder_refusal()) is not None:
            log.warning("%s (%s): every call is denied until then", refusal[1], refusal[0].value)

    async def stop(self) -> None:
        await self.service.stop()

    async def decide(self, document: dict[str, Any]) -> dict[str, Any]:
        try:
            if set(document) != {"token", "job_id", "action", "nonce"}:
                raise ValueError("the body has exactly: token, job_id, action, nonce")
            if not all(isinstance(document[k], str) for k in ("token", "job_id", "nonce")):
                raise ValueError("token, job_id and nonce are strings")
            if not isinstance(document["action"], dict):
                raise ValueError("action is an object")
            request = CallRequest(
                document["token"],
                document["job_id"],
                Action.from_dict(document["action"]),
                document["nonce"],
            )
        except ValueError as exc:
            raise ApiError(400, ReasonCode.API_BAD_PARAMETER, f"body: {exc}") from None
        decision = await self.service.decide(request)
        return decision.to_dict() | {"allowed": decision.allowed}


async def _latest_checkpoint(conn: asyncpg.Connection, _: str) -> dict[str, Any] | None:
    from storage.tlog_store import latest_checkpoint

    stored = await latest_checkpoint(conn)
    if stored is None:
        return None
    return stored.to_dict()  # as `claw-ledger checkpoint latest --json` gives it


async def _inclusion_proof(conn: asyncpg.Connection, event_id: str) -> dict[str, Any] | None:
    from storage.tlog_store import LogEntryNotFound, inclusion_proof_for_event

    try:
        proof = await inclusion_proof_for_event(conn, event_id)
    except LogEntryNotFound:
        return None
    return proof.proof_file()


async def _run_bundle(conn: asyncpg.Connection, job_id: str) -> dict[str, Any] | None:
    import json

    from storage.bundle_queries import bundle_document, bundles_for

    sealed = await bundles_for(conn, job_id)
    if not sealed:
        return None
    newest = sealed[-1]
    raw = await bundle_document(conn, str(newest["bundle_hash_b64u"]))
    return {
        "job_id": job_id,
        "bundle_hash_b64u": newest["bundle_hash_b64u"],
        "trigger": newest.get("trigger"),
        "checkpoint_size": newest.get("checkpoint_size"),
        "sealed_at": newest.get("sealed_at"),
        "bundle": None if raw is None else json.loads(raw),
    }


async def _pulse(conn: asyncpg.Connection, pulse_id: str) -> dict[str, Any] | None:
    from storage.bundle_queries import get_pulse

    return await get_pulse(conn, pulse_id)


def ledger_features(settings: Settings, authorize_key: KeyPair | None) -> Features:
    """Every feature this ledger has; authorize only with a key of role ``authorizer``."""
    authorizer = None
    if authorize_key is not None:
        service = AuthorizeService(AuthorizeConfig.from_settings(settings), authorize_key)
        authorizer = HttpAuthorizer(service)
    return Features(
        authorizer=authorizer,
        latest_checkpoint=Source("tlog_checkpoints", _latest_checkpoint),
        inclusion_proof=Source("tlog_leaves", _inclusion_proof),
        run_bundle=Source("bundles", _run_bundle),
        pulse=Source("pulse_records", _pulse),
    )


def mount_trust_pulse(app: FastAPI, reader_url: str) -> None:
    """The reviewer's pages under ``/pulse`` (their own key check: a bearer token or the
    login form's cookie, role reader or above)."""
    from claw_ledger.viewer import ViewerBackend, viewer_router

    async def role_of(key: str) -> str | None:
        caller = await app.state.keys.caller(app.state.pool, key)
        return None if caller is None else caller.role

    app.include_router(viewer_router(ViewerBackend(reader_url, role_of)))
