"""The running bundle, swapped whole on reload; a bundle that fails its checks never runs."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import structlog

from policies._archive import BundleArchive
from policies._check import run_tables
from policies._engine import CedarPolicyEngine, load_bundle
from policies._errors import PolicyBundleError
from policies._model import Decision, PolicyRequest

log = structlog.get_logger("s284.policies")


def _checked(path: Path | None, archive: BundleArchive | None = None) -> CedarPolicyEngine:
    """Load and run the bundle's decision tables, then archive it by version (so every
    decision it makes can be re-run); PolicyBundleError if any of the three fails."""
    engine = load_bundle(path)
    report = run_tables(engine)
    if not report.ok:
        first = report.lines()[0]
        raise PolicyBundleError(
            f"the bundle fails its decision tables ({len(report.failures)} rows failed, "
            f"{len(report.untested)} policies untested); first: {first}",
            file=engine.path,
        )
    if archive is not None:
        try:
            archive.store(engine)
        except OSError as exc:
            raise PolicyBundleError(
                f"cannot archive the bundle: {exc.strerror or exc}", file=archive.root
            ) from None
    return engine


class EngineHolder:
    """Holds the engine the gateway decides with and replaces it, atomically, on reload.

    It is itself a PolicyEngine (delegating to the current bundle). To decide all the
    recipients of one message with one bundle, take `current` once per message.
    """

    def __init__(self, engine: CedarPolicyEngine, archive: BundleArchive | None = None) -> None:
        self._engine = engine
        self._archive = archive
        self._reloading = threading.Lock()

    @classmethod
    def load(cls, path: Path | None = None, archive: BundleArchive | None = None) -> EngineHolder:
        """Start with a bundle that passes its checks (and is archived in `archive`, if
        given, as is every bundle reloaded later); PolicyBundleError otherwise."""
        engine = _checked(path, archive)
        log.info("policy_bundle_loaded", version=engine.version, path=str(engine.path))
        return cls(engine, archive)

    @property
    def current(self) -> CedarPolicyEngine:
        return self._engine

    @property
    def version(self) -> str:
        return self._engine.version

    def decide(self, request: PolicyRequest) -> Decision:
        return self._engine.decide(request)

    def role_services(self) -> dict[str, str]:
        return self._engine.role_services()

    def minimise(
        self, payload: dict[str, Any], request: PolicyRequest
    ) -> tuple[dict[str, Any], list[str]]:
        return self._engine.minimise(payload, request)

    def reload(self, path: Path | None = None) -> bool:
        """Validate the bundle at `path` (default: where the current one came from) and swap.

        Returns False, keeping the running bundle, if it fails to load or its tables fail.
        """
        with self._reloading:
            running = self._engine
            source = running.path if path is None else Path(path)
            try:
                engine = _checked(source, self._archive)
            except PolicyBundleError as exc:
                log.error(  # noqa: TRY400 - the reason is in `error`; no traceback for a bad file
                    "policy_bundle_rejected",
                    path=str(source),
                    error=str(exc),
                    running_version=running.version,
                )
                return False
            self._engine = engine
        log.info(
            "policy_bundle_reloaded",
            path=str(source),
            version=engine.version,
            previous_version=running.version,
        )
        return True
