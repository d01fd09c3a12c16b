"""The signer's directory and the one rule it enforces before signing."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit import (
    AuditError,
    Checkpoint,
    LogSigner,
    WitnessState,
    verify_consistency,
)
from broker.errors import ConfigError

KEY_FILE = "audit-log.private.json"


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


@dataclass(frozen=True)
class SignerHome:
    """`<dir>/audit-log.private.json` (0600) and `state.json` (last size and root signed)."""

    path: Path

    @property
    def key_path(self) -> Path:
        return self.path / KEY_FILE

    @property
    def exists(self) -> bool:
        return self.key_path.is_file()

    def create(self) -> str:
        """A new log key; returns its verifier key (public) for the deployment home."""
        self._dir()
        signer = LogSigner.generate()
        _write_private(self.key_path, signer.private_json())
        self.save_state(WitnessState())
        return signer.vkey

    def _dir(self) -> None:
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path.chmod(0o700)

    def adopt(self, old_key: Path) -> bool:
        """Move a key an older home kept beside audit.db into this directory (once)."""
        if not old_key.is_file() or self.exists:
            return False
        self._dir()
        _write_private(self.key_path, old_key.read_text())
        old_key.unlink()
        return True

    def signer(self) -> LogSigner:
        if not self.exists:
            raise ConfigError(f"no log key in {self.path}; the signer's directory is missing")
        try:
            return LogSigner.load(self.key_path)
        except AuditError as exc:
            raise ConfigError(str(exc)) from None

    def state(self) -> WitnessState:
        path = self.path / "state.json"
        return WitnessState.from_json(path.read_text()) if path.is_file() else WitnessState()

    def save_state(self, state: WitnessState) -> None:
        tmp = self.path / "state.json.tmp"
        tmp.write_text(state.to_json())
        tmp.replace(self.path / "state.json")


class SignerCore:
    """Answers `state` and `sign` requests; holds the key in memory, never hands it out."""

    def __init__(self, home: SignerHome) -> None:
        self._home = home
        self._signer = home.signer()

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "state":
            st = self._home.state()
            return {"origin": self._signer.origin, "vkey": self._signer.vkey, "size": st.size}
        if op == "sign":
            return {"note": self._sign(request)}
        return {"error": f"unknown request {op!r}"}

    def _sign(self, request: dict[str, Any]) -> str:
        """1 `old` is the size last signed; 2 the tree does not shrink; 3 the proof shows it
        extends the root last signed; then sign and remember."""
        state = self._home.state()
        try:
            old, size = int(request["old"]), int(request["size"])
            root = bytes.fromhex(request["root"])
            proof = [bytes.fromhex(h) for h in request.get("proof", [])]
        except (KeyError, ValueError, TypeError):
            raise AuditError("malformed signing request") from None
        if old != state.size:  # 1
            raise AuditError(f"the signer last signed size {state.size}, not {old}")
        if size < state.size:  # 2
            raise AuditError(f"refusing to sign size {size} below the signed size {state.size}")
        if state.size:  # 3
            verify_consistency(state.size, size, state.root, root, proof)
        note = self._signer.sign_checkpoint(Checkpoint(self._signer.origin, size, root), _no_proof)
        self._home.save_state(WitnessState(size, root))
        return note


def _no_proof(_old: int) -> list[bytes]:
    return []  # the signer checked the proof itself, above
