"""The s 284 decision. Placeholder allow-list engine until the Cedar engine lands (issue 3).

Knows nothing of NATS or HTTP: a request in, a decision with reasons out.
"""

from policies._allowlist import AllowListPolicy, Decision, PolicyEngine, PolicyRequest

__all__ = ["AllowListPolicy", "Decision", "PolicyEngine", "PolicyRequest"]
