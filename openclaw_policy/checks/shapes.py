"""The structure a policy document must have (upstream ``policy-shape.ts``, ``*-shapes.ts``).

A malformed rule yields one ``policy/policy-jsonc-invalid`` finding. The rules
are tables of ``(dotted location, expected shape)``; a location is checked
only when it is present, and a table is checked in order, so the first
problem found is the one upstream reports. Messages and hints are upstream's
word for word: they are hashed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from openclaw_policy import findings as ids
from openclaw_policy.checks.base import sub
from openclaw_policy.evidence import AGENT_WORKSPACE_POLICY_TOOLS
from openclaw_policy.findings import Finding
from openclaw_policy.jsutil import is_record, js_lower, js_trim

__all__ = [
    "AGENTS_SHAPES",
    "AUTH_METADATA_SHAPES",
    "AUTH_MODES_SHAPES",
    "CHANNEL_SHAPES",
    "SECRETS_SHAPES",
    "SUPPORTED_AUTH_PROFILE_METADATA",
    "SUPPORTED_AUTH_PROFILE_MODES",
    "TOOL_METADATA_SHAPES",
    "TOOL_POSTURE_SHAPES",
    "ShapeRule",
    "policy_container_shape_findings",
    "shape_findings",
]

SUPPORTED_TOOL_METADATA: Final = ("risk", "sensitivity", "owner")
SUPPORTED_AUTH_PROFILE_METADATA: Final = ("provider", "mode")
SUPPORTED_AUTH_PROFILE_MODES: Final = ("api_key", "aws-sdk", "oauth", "token")
SUPPORTED_GATEWAY_HTTP_ENDPOINTS: Final = ("chatCompletions", "responses")
SUPPORTED_TOOL_PROFILES: Final = ("minimal", "coding", "messaging", "full")
SUPPORTED_TOOL_EXEC_SECURITY: Final = ("deny", "allowlist", "full")
SUPPORTED_TOOL_EXEC_ASK: Final = ("off", "on-miss", "always")
SUPPORTED_TOOL_EXEC_HOST: Final = ("auto", "sandbox", "gateway", "node")
WORKSPACE_ACCESS: Final = ("none", "ro", "rw")


def _shape(policy_path: str, target: str, message: str, fix_hint: str) -> Finding:
    return Finding(
        check_id=ids.POLICY_JSONC_INVALID,
        severity="error",
        message=message,
        path=policy_path,
        target=target,
        fix_hint=fix_hint,
    )


@dataclass(frozen=True, slots=True)
class At:
    """A policy location: the policy's display path, its document name and the dotted key."""

    policy_path: str
    doc: str
    dotted: str

    def finding(self, suffix: str, message: str, hint: str) -> Finding:
        target = f"oc://{self.doc}/{self.dotted.replace('.', '/')}{suffix}"
        return _shape(self.policy_path, target, f"{self.policy_path} {message}", hint)

    def fill(self, template: str) -> str:
        return template.format(path=self.policy_path, dotted=self.dotted)


Shape = Callable[[Any, At], Finding | None]
ShapeRule = tuple[str, Shape]


def is_object(value: Any, at: At) -> Finding | None:
    if is_record(value):
        return None
    return at.finding(
        "", f"{at.dotted} must be an object.", f"Fix {at.policy_path} so {at.dotted} is an object."
    )


def is_array(value: Any, at: At) -> Finding | None:
    if isinstance(value, list):
        return None
    return at.finding(
        "", f"{at.dotted} must be an array.", f"Fix {at.policy_path} so {at.dotted} is an array."
    )


def is_boolean(value: Any, at: At) -> Finding | None:
    if isinstance(value, bool):
        return None
    hint = f"Fix {at.policy_path} so {at.dotted} is true or false."
    return at.finding("", f"{at.dotted} must be a boolean.", hint)


def is_switch(value: Any, at: At) -> Finding | None:
    """A boolean whose hint names the setting only (``Set x to true or false.``)."""
    if isinstance(value, bool):
        return None
    return at.finding("", f"{at.dotted} must be a boolean.", f"Set {at.dotted} to true or false.")


@dataclass(frozen=True, slots=True)
class ListOf:
    """An array whose entries pass ``valid``; hints are templates of ``{path}`` and ``{dotted}``."""

    valid: Callable[[object], bool]
    entry_must: str
    hint: str
    entry_hint: str | None = None
    of: str = ""

    def __call__(self, value: Any, at: At) -> Finding | None:
        if not isinstance(value, list):
            return at.finding("", f"{at.dotted} must be an array{self.of}.", at.fill(self.hint))
        for index, entry in enumerate(value):
            if not self.valid(entry):
                return at.finding(
                    f"/#{index}",
                    f"{at.dotted}[{index}] must {self.entry_must}.",
                    at.fill(self.entry_hint or self.hint),
                )
        return None


def _non_empty(entry: object) -> bool:
    return isinstance(entry, str) and js_trim(entry) != ""


def _trimmed_in(allowed: tuple[str, ...]) -> Callable[[object], bool]:
    return lambda entry: isinstance(entry, str) and js_trim(entry) in allowed


def _key_in(allowed: tuple[str, ...]) -> Callable[[object], bool]:
    return lambda entry: isinstance(entry, str) and js_lower(js_trim(entry)) in allowed


def _ids(value_name: str, allowed: tuple[str, ...] | None = None) -> ListOf:
    """``policyStringArrayPropertyShapeFinding``: non-empty (and supported) ids."""
    supported = "" if allowed is None else f" Supported values: {', '.join(allowed)}."
    return ListOf(
        _non_empty if allowed is None else _trimmed_in(allowed),
        f"be a supported {value_name}",
        f"Fix {{path}} so {{dotted}} is an array of {value_name}s.",
        f"Use non-empty {value_name} entries.{supported}",
    )


def _allow_deny(dotted: str, value_name: str) -> tuple[ShapeRule, ...]:
    """``policyStringArrayShapeFinding``: an ``{allow, deny}`` object of non-empty strings."""
    entries = ListOf(
        _non_empty,
        "be a non-empty string",
        f"Fix {{path}} so {{dotted}} is an array of {value_name}s.",
        f"Fix {{path}} so each {{dotted}} entry is a {value_name}.",
    )
    return ((dotted, is_object), (f"{dotted}.allow", entries), (f"{dotted}.deny", entries))


def _metadata_keys(supported: tuple[str, ...], what: str = "metadata key") -> ListOf:
    return ListOf(
        _key_in(supported),
        f"be a supported {what}",
        f"Use supported {what}s: {', '.join(supported)}.",
        of=f" of {what}s",
    )


TOOL_POSTURE_SHAPES: Final[tuple[ShapeRule, ...]] = (
    *((f"tools.{s}", is_object) for s in ("profiles", "fs", "exec", "elevated", "alsoAllow")),
    ("tools.profiles.allow", _ids("tool profile id", SUPPORTED_TOOL_PROFILES)),
    ("tools.fs.requireWorkspaceOnly", is_switch),
    ("tools.exec.allowSecurity", _ids("exec security mode", SUPPORTED_TOOL_EXEC_SECURITY)),
    ("tools.exec.requireAsk", _ids("exec ask mode", SUPPORTED_TOOL_EXEC_ASK)),
    ("tools.exec.allowHosts", _ids("exec host", SUPPORTED_TOOL_EXEC_HOST)),
    ("tools.elevated.allow", is_switch),
    ("tools.alsoAllow.expected", _ids("tool id")),
    ("tools.denyTools", _ids("tool id or group")),
)

GATEWAY_SHAPES: Final[tuple[ShapeRule, ...]] = (
    ("gateway", is_object),
    *((f"gateway.{s}", is_object) for s in ("exposure", "auth", "controlUi", "remote", "http")),
    ("gateway.exposure.allowNonLoopbackBind", is_boolean),
    ("gateway.exposure.allowTailscaleFunnel", is_boolean),
    ("gateway.auth.requireAuth", is_boolean),
    ("gateway.auth.requireExplicitRateLimit", is_boolean),
    ("gateway.controlUi.allowInsecure", is_boolean),
    ("gateway.remote.allow", is_boolean),
    ("gateway.http.requireUrlAllowlists", is_boolean),
    (
        "gateway.http.denyEndpoints",
        ListOf(
            _trimmed_in(SUPPORTED_GATEWAY_HTTP_ENDPOINTS),
            "be a supported endpoint id",
            'Use an array of endpoint ids such as ["responses"] or remove {dotted}.',
            f"Use supported endpoint ids: {', '.join(SUPPORTED_GATEWAY_HTTP_ENDPOINTS)}.",
        ),
    ),
)

AGENTS_SHAPES: Final[tuple[ShapeRule, ...]] = (
    ("agents", is_object),
    ("agents.workspace", is_object),
    (
        "agents.workspace.allowedAccess",
        ListOf(
            lambda entry: isinstance(entry, str) and entry in WORKSPACE_ACCESS,
            "be none, ro, or rw",
            'Use workspace access values such as ["none", "ro"].',
        ),
    ),
    (
        "agents.workspace.denyTools",
        ListOf(
            _trimmed_in(AGENT_WORKSPACE_POLICY_TOOLS),
            "be a supported agent workspace tool id",
            'Use tool ids such as ["exec", "process", "write", "edit", "apply_patch"].',
            f"Use supported tool ids: {', '.join(AGENT_WORKSPACE_POLICY_TOOLS)}.",
        ),
    ),
)

_CONTAINER_SHAPES: Final[tuple[ShapeRule, ...]] = (
    ("tools", is_object),
    ("tools.settings", is_object),
    ("tools.entries", is_array),
    *TOOL_POSTURE_SHAPES,
    ("channels", is_object),
    ("mcp", is_object),
    *_allow_deny("mcp.servers", "MCP server id"),
    ("models", is_object),
    *_allow_deny("models.providers", "model provider id"),
    ("network", is_object),
    ("network.privateNetwork", is_object),
    ("network.privateNetwork.allow", is_boolean),
    ("secrets", is_object),
    ("auth", is_object),
    ("auth.profiles", is_object),
    *GATEWAY_SHAPES,
    *AGENTS_SHAPES,
)

CHANNEL_SHAPES: Final[tuple[ShapeRule, ...]] = (
    (
        "channels.denyRules",
        ListOf(
            lambda rule: (
                is_record(rule)
                and ("id" not in rule or isinstance(rule["id"], str))
                and ("reason" not in rule or isinstance(rule["reason"], str))
                and is_record(rule.get("when"))
                and isinstance(rule["when"].get("provider"), str)
            ),
            "define when.provider as a string",
            "Fix {path} so channel deny rules are an array.",
            "Fix {path} so each channel deny rule has a provider match.",
        ),
    ),
)
TOOL_METADATA_SHAPES: Final = (("tools.requireMetadata", _metadata_keys(SUPPORTED_TOOL_METADATA)),)
AUTH_METADATA_SHAPES: Final = (
    ("auth.profiles.requireMetadata", _metadata_keys(SUPPORTED_AUTH_PROFILE_METADATA)),
)
AUTH_MODES_SHAPES: Final = (
    ("auth.profiles.allowModes", _metadata_keys(SUPPORTED_AUTH_PROFILE_MODES, "auth mode")),
)
SECRETS_SHAPES: Final[tuple[ShapeRule, ...]] = (
    ("secrets.requireManagedProviders", is_switch),
    ("secrets.allowInsecureProviders", is_switch),
    (
        "secrets.denySources",
        ListOf(
            _non_empty,
            "be a non-empty source name",
            'Use an array such as ["exec"] or remove {dotted}.',
            "Use non-empty source names such as env, file, exec, or openclaw.",
            of=" of source names",
        ),
    ),
)


def shape_findings(
    policy: Any,
    rules: Sequence[ShapeRule],
    policy_path: str,
    doc: str,
    *,
    first_only: bool = True,
) -> list[Finding]:
    """The problems of the present locations of ``rules`` (only the first by default)."""
    out: list[Finding] = []
    for dotted, shape in rules:
        *parents, key = dotted.split(".")
        container = policy if is_record(policy) else {}
        for part in parents:
            container = sub(container, part)
        if key not in container:
            continue
        finding = shape(container[key], At(policy_path, doc, dotted))
        if finding is not None:
            out.append(finding)
            if first_only:
                break
    return out


def policy_container_shape_findings(policy: Any, policy_path: str, doc: str) -> list[Finding]:
    """The first structural problem of the policy document, if any."""
    if not is_record(policy):
        return [
            _shape(
                policy_path,
                f"oc://{doc}",
                f"{policy_path} must contain a policy object.",
                f"Fix {policy_path} so the top-level policy is an object.",
            )
        ]
    return shape_findings(policy, _CONTAINER_SHAPES, policy_path, doc)
