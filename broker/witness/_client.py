"""The agency's side: a witness home (its own key and state) and one round of witnessing.

One round (`witness_once`): 1 fetch the log's latest checkpoint; 2 if it is new, fetch the
consistency proof from the size this witness last cosigned; 3 check both as tlog-witness's
add-checkpoint says (audit.add_checkpoint) and cosign; 4 keep the new state before anything
else, then 5 hand the cosignature to the broker. A refused checkpoint leaves the state as
it was and raises: the operator of the witness is the one who must hear of it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from audit import (
    AddCheckpoint,
    AuditError,
    NoteVerifier,
    WitnessSigner,
    WitnessState,
    add_checkpoint,
    parse_verifier_key,
)
from broker.errors import ConfigError, TransportError

AUDIT = "/api/v1/audit"


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


@dataclass(frozen=True)
class WitnessHome:
    """`<dir>/witness.json` (name, the log's verifier key), `key.json` (0600), `state.json`
    (the size and root last cosigned). Nothing here comes from the broker's home."""

    path: Path

    @classmethod
    def create(cls, path: Path, name: str, log_vkey: str) -> WitnessHome:
        if (path / "key.json").exists():
            raise ConfigError(f"{path} already holds a witness key")
        log_vkey = log_vkey.strip()
        try:
            parse_verifier_key(log_vkey)
            signer = WitnessSigner.generate(name)
        except AuditError as exc:
            raise ConfigError(str(exc)) from None
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.chmod(0o700)
        _write_private(path / "key.json", signer.private_json())
        (path / "witness.json").write_text(json.dumps({"name": name, "log_key": log_vkey}))
        home = cls(path)
        home.save_state(WitnessState())
        return home

    def _read(self, name: str) -> str:
        try:
            return (self.path / name).read_text()
        except OSError:
            raise ConfigError(f"no witness at {self.path}; run `s284 witness init`") from None

    def signer(self) -> WitnessSigner:
        try:
            return WitnessSigner.from_json(self._read("key.json"))
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"unreadable witness key: {exc.__class__.__name__}") from None

    def log_verifier(self) -> NoteVerifier:
        return parse_verifier_key(json.loads(self._read("witness.json"))["log_key"])

    def state(self) -> WitnessState:
        return WitnessState.from_json(self._read("state.json"))

    def last(self) -> dict[str, object]:
        """The last checkpoint cosigned, its line, and whether the broker took it."""
        path = self.path / "last.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def save_last(self, last: dict[str, object]) -> None:
        (self.path / "last.json").write_text(json.dumps(last))

    def save_state(self, state: WitnessState) -> None:
        tmp = self.path / "state.json.tmp"
        tmp.write_text(state.to_json())
        tmp.replace(self.path / "state.json")


@dataclass(frozen=True)
class WitnessOutcome:
    size: int
    cosigned: bool  # False: nothing new since the last round


def _get(http: httpx.Client, path: str, **kw: object) -> httpx.Response:
    try:
        response = http.get(AUDIT + path, **kw)  # type: ignore[arg-type]
    except httpx.HTTPError as exc:
        raise TransportError(f"cannot reach the broker's API: {exc.__class__.__name__}") from None
    if response.status_code >= 400:  # noqa: PLR2004 - HTTP error range
        raise TransportError(f"GET {path}: the broker answered {response.status_code}")
    return response


def witness_once(home: WitnessHome, http: httpx.Client, now: float | None = None) -> WitnessOutcome:
    """One round against the API `http` points at (base URL and bearer token set on it)."""
    state, log = home.state(), home.log_verifier()
    note = _get(http, "/checkpoint", headers={"Accept": "text/plain"}).text  # 1
    last = home.last()
    if last.get("note") == note:  # nothing new; hand over again only what did not arrive
        if not last.get("posted"):
            _post(home, http, note, str(last["line"]))
        return WitnessOutcome(state.size, cosigned=False)
    size = int(note.split("\n", 2)[1]) if note.count("\n") >= 2 else 0  # noqa: PLR2004
    proof: list[bytes] = []
    if 0 < state.size < size:  # 2
        hexes = _get(http, "/consistency", params={"old": state.size, "new": size}).json()
        proof = [bytes.fromhex(h) for h in hexes["proof"]]
    request = AddCheckpoint(state.size, proof, note)
    new_state, line = add_checkpoint(  # 3
        state, log, request, home.signer(), int(now if now is not None else time.time())
    )
    home.save_state(new_state)  # 4
    home.save_last({"note": note, "line": line, "posted": False})
    (home.path / "cosigned.note").write_text(note + line + "\n")  # for verify --checkpoint
    _post(home, http, note, line)  # 5
    return WitnessOutcome(new_state.size, cosigned=True)


def _post(home: WitnessHome, http: httpx.Client, note: str, line: str) -> None:
    """The cosigned checkpoint: the log's note with our signature line added."""
    try:
        posted = http.post(AUDIT + "/cosignatures", content=(note + line + "\n").encode())
    except httpx.HTTPError as exc:
        raise TransportError(f"cannot reach the broker's API: {exc.__class__.__name__}") from None
    if posted.status_code != 201:  # noqa: PLR2004 - created
        raise TransportError(f"the broker refused the cosignature ({posted.status_code})")
    home.save_last({"note": note, "line": line, "posted": True})
