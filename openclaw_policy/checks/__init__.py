"""Policy rules → findings: a port of OpenClaw's ``extensions/policy/src/doctor``.

One module per upstream rule scope (``doctor/scopes/*.ts``): ``channels``,
``model_network`` (MCP, models, network), ``gateway``, ``sandbox`` (agent
workspace), ``tools`` (tool posture, TOOLS.md metadata) and ``data_auth``
(secrets, auth profiles); ``shapes`` holds the structure a policy must have and
``base`` the table-driven check shape most of them share. A check runs only
when its rule is present in the policy. Messages, ``oc://`` paths, fix hints
and the order of findings are upstream's, since all of them are hashed.
"""
