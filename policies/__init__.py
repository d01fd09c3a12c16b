"""The s 284 decision: Cedar policies and tables as data (policies/bundle/), and their tools.

Knows nothing of NATS or HTTP: a request in, a decision with reasons out.

    engine = load_bundle()                       # parse once (PolicyBundleError if invalid)
    decision = engine.decide(PolicyRequest(...))  # decide many; never raises, fails closed
    payload, withheld = engine.minimise(payload, request)

`check_bundle`, `explain` and `diff` are the tools behind `s284 policy check|explain|diff`;
`EngineHolder` swaps in a new bundle on reload, archiving each by version in a
`BundleArchive` so that `replay` can re-run a logged decision with the bundle that made
it; `decision_latency` is `s284 bench`'s figure.
"""

from policies._archive import (
    BundleArchive,
    BundleNotArchivedError,
    RecordedDecision,
    Replay,
    replay,
)
from policies._bench import decision_latency
from policies._check import CheckReport, RowFailure, check_bundle
from policies._diff import Change, diff
from policies._engine import CedarPolicyEngine, explain, load_bundle
from policies._errors import PolicyBundleError
from policies._holder import EngineHolder
from policies._model import DEFAULT_DENY, ENGINE_ERROR, Decision, PolicyEngine, PolicyRequest

__all__ = [
    "DEFAULT_DENY",
    "ENGINE_ERROR",
    "BundleArchive",
    "BundleNotArchivedError",
    "CedarPolicyEngine",
    "Change",
    "CheckReport",
    "Decision",
    "EngineHolder",
    "PolicyBundleError",
    "PolicyEngine",
    "PolicyRequest",
    "RecordedDecision",
    "Replay",
    "RowFailure",
    "check_bundle",
    "decision_latency",
    "diff",
    "explain",
    "load_bundle",
    "replay",
]
