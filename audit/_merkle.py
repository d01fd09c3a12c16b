"""RFC 9162 (Certificate Transparency v2) Merkle tree over SHA-256, as pure functions.

Storage model: the hash of every *perfect* subtree is kept, addressed by a `Position`
(level, index) covering leaves [index * 2**level, (index + 1) * 2**level); level 0 holds
the leaf hashes. A perfect subtree never changes once its last leaf exists, so the store
only ever inserts. Any other hash a proof needs (a subtree on the right edge of a tree whose
size is not a power of two) is folded from perfect ones, so a proof costs one batch lookup.

Proof paths are exactly those of RFC 9162 §2.1.3 / §2.1.4 (identical to RFC 6962's).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Protocol

from audit._errors import ProofError

Position = tuple[int, int]
"""(level, index) of a perfect subtree."""

ProofShape = list[tuple[Position, ...]]
"""One entry per proof hash: the perfect subtrees, left to right, that it folds from."""

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
# Bound once: these run millions of times when a verifier rebuilds the whole log.
_sha256 = hashlib.sha256


class NodeSource(Protocol):
    """Where proofs read stored perfect-subtree hashes from (the store, or a dict in tests)."""

    def get_nodes(self, positions: Sequence[Position]) -> dict[Position, bytes]:
        """Return the hash at every position asked for; raise if any is missing."""
        ...


def leaf_hash(data: bytes) -> bytes:
    return _sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(_NODE_PREFIX + left + right).digest()


# --- building -------------------------------------------------------------------------


def frontier_positions(size: int) -> list[Position]:
    """The perfect subtrees composing a tree of `size` leaves, largest (leftmost) first."""
    return _range_positions(0, _non_negative(size, "size"))


def root_from_frontier(hashes: Sequence[bytes]) -> bytes:
    """The root of a tree from its frontier hashes: the right edge folds in first."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for left in reversed(hashes[:-1]):
        acc = _sha256(_NODE_PREFIX + left + acc).digest()
    return acc


def completed_nodes(
    old_size: int, new_leaves: Sequence[bytes], frontier: Sequence[bytes]
) -> list[tuple[int, int, bytes]]:
    """Every perfect subtree (level, index, hash) completed by appending `new_leaves`.

    `frontier` holds the hashes at `frontier_positions(old_size)`; level-0 nodes for the
    new leaves are included.
    """
    stack = _checked_frontier(old_size, frontier)
    out: list[tuple[int, int, bytes]] = []
    append = out.append
    size = old_size
    for leaf in new_leaves:
        append((0, size, leaf))
        carry, level, index = leaf, 0, size
        # An odd index is a right child: its left sibling is the top of the frontier.
        while index & 1:
            carry = _sha256(_NODE_PREFIX + stack.pop() + carry).digest()
            level += 1
            index >>= 1
            append((level, index, carry))
        stack.append(carry)
        size += 1
    return out


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over a whole in-memory list, level by level.

    Pairing neighbours and promoting a lone last node gives the same tree as RFC 9162's
    split at the largest power of two, without recursion.
    """
    level = list(leaf_hashes)
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        paired = [
            _sha256(_NODE_PREFIX + level[i] + level[i + 1]).digest()
            for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


class TreeBuilder:
    """Appends leaf hashes one at a time, keeping only the frontier.

    Lets a verifier streaming the log check each checkpoint's root as it passes its size.
    """

    __slots__ = ("_frontier", "_size")

    def __init__(self, size: int = 0, frontier: Sequence[bytes] = ()) -> None:
        self._frontier = _checked_frontier(size, frontier)
        self._size = size

    @property
    def size(self) -> int:
        return self._size

    def frontier(self) -> list[bytes]:
        return list(self._frontier)

    def append(self, leaf_hash: bytes) -> None:
        stack, index, carry = self._frontier, self._size, leaf_hash
        while index & 1:
            carry = _sha256(_NODE_PREFIX + stack.pop() + carry).digest()
            index >>= 1
        stack.append(carry)
        self._size += 1

    def root(self) -> bytes:
        return root_from_frontier(self._frontier)


def tree_root(size: int, source: NodeSource) -> bytes:
    """The root at `size` from stored nodes, in one lookup."""
    positions = frontier_positions(size)
    nodes = _fetch(source, positions)
    return root_from_frontier([nodes[p] for p in positions])


# --- proofs ---------------------------------------------------------------------------


def inclusion_proof_positions(index: int, size: int) -> ProofShape:
    """Which stored nodes each hash of PATH(index, D[size]) (RFC 9162 §2.1.3.1) folds from."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    siblings: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            siblings.append((start + k, end))
            end = start + k
        else:
            siblings.append((start, start + k))
            start += k
    # The recursion emits the sibling nearest the leaf first; the walk found it last.
    return [tuple(_range_positions(a, b)) for a, b in reversed(siblings)]


def consistency_proof_positions(old_size: int, new_size: int) -> ProofShape:
    """Which stored nodes each hash of PROOF(old, D[new]) (RFC 9162 §2.1.4.1) folds from."""
    _check_sizes(old_size, new_size)
    if old_size in {0, new_size}:
        return []
    ranges: list[tuple[int, int]] = []
    start, end, whole_old_tree = 0, new_size, True
    while old_size != end:
        k = _split(end - start)
        if old_size - start <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
            whole_old_tree = False
    if not whole_old_tree:
        # SUBPROOF(m, D[m], false) = {MTH(D[m])}: the old tree's right part, seen last.
        ranges.append((start, end))
    return [tuple(_range_positions(a, b)) for a, b in reversed(ranges)]


def inclusion_proof(index: int, size: int, source: NodeSource) -> list[bytes]:
    return _resolve(inclusion_proof_positions(index, size), source)


def consistency_proof(old_size: int, new_size: int, source: NodeSource) -> list[bytes]:
    return _resolve(consistency_proof_positions(old_size, new_size), source)


# --- verification ---------------------------------------------------------------------


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 §2.1.3.2; raises ProofError unless `leaf_hash` is leaf `index` under `root`."""
    _check_hashes([leaf_hash, root, *proof])
    if not 0 <= index < size:  # step 1
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    fn, sn, r = index, size - 1, leaf_hash  # steps 2-3
    for p in proof:  # step 4
        if sn == 0:
            raise ProofError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                fn, sn = _shift_to_right_child(fn, sn)
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:  # step 5
        raise ProofError("inclusion proof is shorter than the tree is deep")
    if not hmac.compare_digest(r, root):
        raise ProofError(f"inclusion proof for leaf {index} does not lead to the root")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 §2.1.4.2; raises ProofError unless the tree at `old_size` is a prefix."""
    _check_hashes([old_root, new_root, *proof])
    _check_sizes(old_size, new_size)
    if old_size in {0, new_size}:
        _verify_trivial_consistency(old_size, new_size, old_root, new_root, proof)
        return
    if not proof:  # step 1
        raise ProofError("consistency proof is empty")
    path = [old_root, *proof] if old_size & (old_size - 1) == 0 else list(proof)  # step 2
    fn, sn = old_size - 1, new_size - 1  # step 3
    while fn & 1:  # step 4
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:
            raise ProofError("consistency proof is longer than the trees are deep")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                fn, sn = _shift_to_right_child(fn, sn)
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    _check_consistency_result(fr, sr, sn, old_root, new_root)  # step 7


# --- helpers --------------------------------------------------------------------------


def _split(n: int) -> int:
    """The largest power of two strictly below n (n > 1): RFC 9162's k."""
    return 1 << ((n - 1).bit_length() - 1)


def _range_positions(start: int, end: int) -> list[Position]:
    """Perfect subtrees covering [start, end), largest first.

    Valid because every range a proof names starts at a multiple of a power of two at
    least as large as the range itself.
    """
    out: list[Position] = []
    while start < end:
        level = (end - start).bit_length() - 1
        out.append((level, start >> level))
        start += 1 << level
    return out


def _resolve(shape: ProofShape, source: NodeSource) -> list[bytes]:
    nodes = _fetch(source, list(dict.fromkeys(p for entry in shape for p in entry)))
    return [root_from_frontier([nodes[p] for p in entry]) for entry in shape]


def _fetch(source: NodeSource, positions: Sequence[Position]) -> dict[Position, bytes]:
    if not positions:
        return {}
    nodes = source.get_nodes(positions)
    missing = [p for p in positions if p not in nodes]
    if missing:
        raise ProofError(f"node source lacks {len(missing)} node(s), first {missing[0]}")
    return nodes


def _shift_to_right_child(fn: int, sn: int) -> tuple[int, int]:
    """Skip the levels where the node is the lone right-edge child: no sibling to hash."""
    while not fn & 1 and fn != 0:
        fn, sn = fn >> 1, sn >> 1
    return fn, sn


def _verify_trivial_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    if proof:
        raise ProofError(f"consistency proof from {old_size} to {new_size} must be empty")
    # Stricter than RFC 9162, which says nothing of these roots: a wrong one is a lie.
    if old_size == 0 and not hmac.compare_digest(old_root, EMPTY_ROOT):
        raise ProofError("the root of an empty tree must be the hash of no bytes")
    if old_size == new_size and not hmac.compare_digest(old_root, new_root):
        raise ProofError(f"two different roots for the same tree size {new_size}")


def _check_consistency_result(
    fr: bytes, sr: bytes, sn: int, old_root: bytes, new_root: bytes
) -> None:
    if sn != 0:
        raise ProofError("consistency proof is shorter than the trees are deep")
    if not hmac.compare_digest(fr, old_root):
        raise ProofError("consistency proof does not lead to the old root")
    if not hmac.compare_digest(sr, new_root):
        raise ProofError("consistency proof does not lead to the new root")


def _check_sizes(old_size: int, new_size: int) -> None:
    if not 0 <= old_size <= new_size:
        raise ProofError(f"no consistency from size {old_size} to size {new_size}")


def _check_hashes(hashes: Sequence[bytes]) -> None:
    if any(len(h) != HASH_SIZE for h in hashes):
        raise ProofError(f"every hash in a proof must be {HASH_SIZE} bytes")


def _checked_frontier(size: int, frontier: Sequence[bytes]) -> list[bytes]:
    # A frontier that does not match the size is a caller bug, not a failed proof.
    expected = _non_negative(size, "size").bit_count()
    if len(frontier) != expected:
        raise ValueError(
            f"a tree of size {size} has {expected} frontier hashes, not {len(frontier)}"
        )
    return list(frontier)


def _non_negative(value: int, name: str) -> int:
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")
    return value
