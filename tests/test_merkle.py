"""RFC 9162 Merkle tree: published vectors, an RFC-literal reference, and tamper probes."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest

from audit import _merkle as merkle
from audit._errors import AuditError, ProofError
from audit._merkle import Position

# Vectors from transparency-dev/merkle, proof/verify_test.go (`leaves`, `roots`,
# `inclusionProofs`, `consistencyProofs`), the RFC 6962 test data that Google's
# certificate-transparency code has used since 2013. Their leaf indices are 1-based.
VECTOR_LEAVES = [
    bytes.fromhex(h)
    for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
              "606162636465666768696a6b6c6d6e6f"]
]  # fmt: skip
VECTOR_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
H_01 = "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"
H_23 = "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"
H_4567 = "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"
H_4 = "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"
H_67 = "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"
H_45 = "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"
H_6 = "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"
VECTOR_INCLUSION = [  # (1-based leaf, tree size, proof)
    (1, 8, [H_01, H_23, H_4567]),
    (6, 8, [H_4, H_67, VECTOR_ROOTS[3]]),
    (3, 3, [VECTOR_ROOTS[1]]),
    (2, 5, [VECTOR_ROOTS[0], H_23, H_4]),
]
VECTOR_CONSISTENCY = [  # (old size, new size, proof)
    (1, 8, [H_01, H_23, H_4567]),
    (6, 8, [H_45, H_67, VECTOR_ROOTS[3]]),
    (2, 5, [H_23, H_4]),
    (6, 7, [H_45, H_6, VECTOR_ROOTS[3]]),
]

MAX_SIZE = 70
LEAVES = [merkle.leaf_hash(i.to_bytes(2, "big")) for i in range(MAX_SIZE)]
SOME_HASH = hashlib.sha256(b"some other hash").digest()


class DictSource:
    """In-memory NodeSource that counts lookups, so tests can prove proofs are one batch."""

    def __init__(self, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        self.nodes = {(level, index): h for level, index, h in nodes}
        self.calls = 0

    def get_nodes(self, positions: Sequence[Position]) -> dict[Position, bytes]:
        self.calls += 1
        return {p: self.nodes[p] for p in positions}


def source_for(leaves: Sequence[bytes]) -> DictSource:
    return DictSource(merkle.completed_nodes(0, leaves, []))


# --- reference: RFC 9162 §2.1.1, §2.1.3.1 and §2.1.4.1 written literally -------------


def ref_k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: Sequence[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return d[0]
    k = ref_k(len(d))
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = ref_k(len(d))
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: Sequence[bytes], *, b: bool) -> list[bytes]:
    if m == len(d):
        return [] if b else [ref_mth(d)]
    k = ref_k(len(d))
    if m <= k:
        return [*ref_subproof(m, d[:k], b=b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], b=False), ref_mth(d[:k])]


def all_pairs(max_size: int) -> list[tuple[int, int]]:
    return [(a, n) for n in range(1, max_size + 1) for a in range(n)]


# --- tamper probes, after corruptInclusionProof / corruptConsistencyProof in
# transparency-dev/merkle proof/verify_test.go ----------------------------------------


def flipped(proof: Sequence[bytes], i: int) -> list[bytes]:
    out = list(proof)
    out[i] = bytes([out[i][0] ^ 8]) + out[i][1:]
    return out


def inclusion_probes(
    leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes
) -> list[tuple[str, tuple[bytes, int, int, list[bytes], bytes]]]:
    probes = [
        ("index - 1", (leaf, index - 1, size, proof, root)),
        ("index + 1", (leaf, index + 1, size, proof, root)),
        ("index ^ 2", (leaf, index ^ 2, size, proof, root)),
        ("size * 2", (leaf, index, size * 2, proof, root)),
        ("size // 2", (leaf, index, size // 2, proof, root)),
        ("wrong leaf", (SOME_HASH, index, size, proof, root)),
        ("empty root", (leaf, index, size, proof, merkle.EMPTY_ROOT)),
        ("other root", (leaf, index, size, proof, SOME_HASH)),
        ("trailing root", (leaf, index, size, [*proof, root], root)),
        ("preceding root", (leaf, index, size, [root, *proof], root)),
        ("short hash", (leaf, index, size, [*proof[:-1], proof[-1][:31]], root)),
    ]
    probes += [(f"flipped [{i}]", (leaf, index, size, flipped(proof, i), root))
               for i in range(len(proof))]  # fmt: skip
    if proof:
        probes.append(("removed last", (leaf, index, size, proof[:-1], root)))
    if len(proof) > 1:
        probes.append(("inserted", (leaf, index, size, [proof[0], SOME_HASH, *proof[1:]], root)))
    return probes


def consistency_probes(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> list[tuple[str, tuple[int, int, bytes, bytes, list[bytes]]]]:
    probes = [
        ("old - 1", (old - 1, new, old_root, new_root, proof)),
        ("old + 1", (old + 1, new, old_root, new_root, proof)),
        ("old ^ 2", (old ^ 2, new, old_root, new_root, proof)),
        ("new * 2", (old, new * 2, old_root, new_root, proof)),
        ("new // 2", (old, new // 2, old_root, new_root, proof)),
        ("wrong old root", (old, new, SOME_HASH, new_root, proof)),
        ("wrong new root", (old, new, old_root, SOME_HASH, proof)),
        ("swapped roots", (old, new, new_root, old_root, proof)),
        ("empty proof", (old, new, old_root, new_root, [])),
        ("trailing old root", (old, new, old_root, new_root, [*proof, old_root])),
        ("trailing new root", (old, new, old_root, new_root, [*proof, new_root])),
        ("preceding old root", (old, new, old_root, new_root, [old_root, *proof])),
        ("preceding new root", (old, new, old_root, new_root, [new_root, *proof])),
        ("preceding proof[0]", (old, new, old_root, new_root, [proof[0], *proof])),
        ("truncated", (old, new, old_root, new_root, proof[:-1])),
    ]
    probes += [(f"flipped [{i}]", (old, new, old_root, new_root, flipped(proof, i)))
               for i in range(len(proof))]  # fmt: skip
    return probes


def accepted_inclusion_probes(leaf, index, size, proof, root) -> list[str]:
    accepted = []
    for name, args in inclusion_probes(leaf, index, size, proof, root):
        try:
            merkle.verify_inclusion(*args)
        except ProofError:
            continue
        accepted.append(name)
    return accepted


def accepted_consistency_probes(old, new, old_root, new_root, proof) -> list[str]:
    accepted = []
    for name, args in consistency_probes(old, new, old_root, new_root, proof):
        try:
            merkle.verify_consistency(*args)
        except ProofError:
            continue
        accepted.append(name)
    return accepted


# --- hashing and roots ----------------------------------------------------------------


def test_hashes_are_domain_separated_sha256():
    """Leaf = SHA-256(0x00||d), node = SHA-256(0x01||l||r), empty tree = SHA-256 of nothing."""
    assert merkle.leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert merkle.node_hash(b"l", b"r") == hashlib.sha256(b"\x01lr").digest()
    assert merkle.EMPTY_ROOT.hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert merkle.root([]) == merkle.EMPTY_ROOT


def test_roots_match_published_vectors():
    """Roots of the RFC 6962 test tree at sizes 1..8 equal the published values."""
    hashes = [merkle.leaf_hash(d) for d in VECTOR_LEAVES]
    for size, want in enumerate(VECTOR_ROOTS, start=1):
        assert merkle.root(hashes[:size]).hex() == want


def test_every_way_to_compute_a_root_agrees_with_the_rfc():
    """root(), the frontier fold, TreeBuilder and stored nodes give RFC MTH at every size."""
    builder = merkle.TreeBuilder()
    for size in range(MAX_SIZE + 1):
        want = ref_mth(LEAVES[:size])
        nodes = dict(source_for(LEAVES[:size]).nodes)
        frontier = [nodes[p] for p in merkle.frontier_positions(size)]
        assert merkle.root(LEAVES[:size]) == want
        assert merkle.root_from_frontier(frontier) == want
        assert merkle.tree_root(size, source_for(LEAVES[:size])) == want
        assert builder.size == size
        assert builder.root() == want
        assert builder.frontier() == frontier
        if size < MAX_SIZE:
            builder.append(LEAVES[size])


def test_tree_builder_resumes_from_a_stored_frontier():
    """A TreeBuilder seeded with size and frontier continues exactly where the log stopped."""
    nodes = source_for(LEAVES[:13]).nodes
    builder = merkle.TreeBuilder(13, [nodes[p] for p in merkle.frontier_positions(13)])
    for leaf in LEAVES[13:40]:
        builder.append(leaf)
    assert builder.root() == ref_mth(LEAVES[:40])


# --- the storage model ----------------------------------------------------------------


def test_frontier_positions_follow_the_set_bits_of_size():
    """A tree of 13 = 8+4+1 leaves is the perfect subtrees [0,8), [8,12), [12,13)."""
    assert merkle.frontier_positions(0) == []
    assert merkle.frontier_positions(13) == [(3, 0), (2, 2), (0, 12)]
    assert merkle.frontier_positions(16) == [(4, 0)]


def test_completed_nodes_are_exactly_the_perfect_subtrees_with_their_mth():
    """Building n leaves yields every perfect subtree inside [0, n) once, with its RFC hash."""
    for size in range(MAX_SIZE + 1):
        nodes = merkle.completed_nodes(0, LEAVES[:size], [])
        want = {
            (level, index) for level in range(size.bit_length()) for index in range(size >> level)
        }
        assert len(nodes) == len(want)
        assert {(level, index) for level, index, _ in nodes} == want
        for level, index, h in nodes:
            assert h == ref_mth(LEAVES[index << level : (index + 1) << level])


@pytest.mark.parametrize("batch", [1, 2, 3, 5, 7, 8, 13, 64, MAX_SIZE])
def test_completed_nodes_do_not_depend_on_batching(batch):
    """Appending in batches of any size stores the same nodes as appending all at once."""
    at_once = merkle.completed_nodes(0, LEAVES, [])
    stored: dict[Position, bytes] = {}
    batched: list[tuple[int, int, bytes]] = []
    for start in range(0, MAX_SIZE, batch):
        frontier = [stored[p] for p in merkle.frontier_positions(start)]
        new = merkle.completed_nodes(start, LEAVES[start : start + batch], frontier)
        stored.update({(level, index): h for level, index, h in new})
        batched += new
    assert sorted(batched) == sorted(at_once)


def test_irregular_batches_give_the_same_nodes():
    """Batches of changing sizes (1, 2, 3, ...) still give the all-at-once nodes."""
    stored: dict[Position, bytes] = {}
    start, batch = 0, 1
    while start < MAX_SIZE:
        frontier = [stored[p] for p in merkle.frontier_positions(start)]
        new = merkle.completed_nodes(start, LEAVES[start : start + batch], frontier)
        stored.update({(level, index): h for level, index, h in new})
        start, batch = min(start + batch, MAX_SIZE), batch + 1
    assert stored == source_for(LEAVES).nodes


def test_a_frontier_that_does_not_match_the_size_is_refused():
    """A frontier of the wrong length is a caller bug and raises ValueError, not a bad tree."""
    with pytest.raises(ValueError, match="frontier"):
        merkle.completed_nodes(3, [LEAVES[3]], [LEAVES[0]])
    with pytest.raises(ValueError, match="frontier"):
        merkle.TreeBuilder(1, [])


# --- proof shapes and generation ------------------------------------------------------


def test_proof_shapes_fold_right_edge_hashes_from_perfect_subtrees():
    """A proof hash over a non-perfect right-edge range is named by the perfect parts it folds."""
    assert merkle.inclusion_proof_positions(0, 7) == [((0, 1),), ((1, 1),), ((1, 2), (0, 6))]
    assert merkle.consistency_proof_positions(3, 7) == [
        ((0, 2),),
        ((0, 3),),
        ((1, 0),),
        ((1, 2), (0, 6)),
    ]


def test_proofs_match_published_vectors():
    """Inclusion and consistency proofs over the RFC 6962 test tree equal the published ones."""
    source = source_for([merkle.leaf_hash(d) for d in VECTOR_LEAVES])
    for leaf, size, proof in VECTOR_INCLUSION:
        assert [h.hex() for h in merkle.inclusion_proof(leaf - 1, size, source)] == proof
    for old, new, proof in VECTOR_CONSISTENCY:
        assert [h.hex() for h in merkle.consistency_proof(old, new, source)] == proof


def test_inclusion_proofs_equal_rfc_path_for_every_index_and_size():
    """inclusion_proof is PATH(m, D[n]) for all n <= 70, reading nodes of that size in one batch."""
    for index, size in all_pairs(MAX_SIZE):
        source = source_for(LEAVES[:size])
        assert merkle.inclusion_proof(index, size, source) == ref_path(index, LEAVES[:size])
        assert source.calls == (1 if size > 1 else 0)


def test_consistency_proofs_equal_rfc_proof_for_every_pair_of_sizes():
    """consistency_proof is PROOF(m, D[n]) for all m <= n <= 70, in at most one batch lookup."""
    for old, new in all_pairs(MAX_SIZE):
        source = source_for(LEAVES[:new])
        want = ref_subproof(old, LEAVES[:new], b=True) if old else []
        assert merkle.consistency_proof(old, new, source) == want
        assert source.calls == (1 if want else 0)
    assert merkle.consistency_proof(5, 5, source_for(LEAVES[:5])) == []


def test_proofs_outside_the_tree_are_refused():
    """Asking for a leaf past the end, or consistency backwards in time, raises ProofError."""
    source = source_for(LEAVES[:5])
    for index, size in [(5, 5), (-1, 5), (0, 0)]:
        with pytest.raises(ProofError, match="outside"):
            merkle.inclusion_proof(index, size, source)
    with pytest.raises(ProofError, match="no consistency"):
        merkle.consistency_proof(5, 4, source)


def test_a_source_missing_nodes_is_a_proof_error():
    """A store that lacks a node yields ProofError (an AuditError), not a KeyError."""

    class Lossy:
        def get_nodes(self, _positions):
            return {}

    with pytest.raises(ProofError, match="lacks") as caught:
        merkle.inclusion_proof(0, 8, Lossy())
    assert isinstance(caught.value, AuditError)


# --- verification ---------------------------------------------------------------------


def test_published_proofs_verify_and_their_corruptions_do_not():
    """The vector proofs verify; every probe from transparency-dev's tests is rejected."""
    hashes = [merkle.leaf_hash(d) for d in VECTOR_LEAVES]
    roots = [bytes.fromhex(r) for r in VECTOR_ROOTS]
    for leaf, size, hex_proof in VECTOR_INCLUSION:
        proof = [bytes.fromhex(h) for h in hex_proof]
        merkle.verify_inclusion(hashes[leaf - 1], leaf - 1, size, proof, roots[size - 1])
        args = (hashes[leaf - 1], leaf - 1, size, proof, roots[size - 1])
        assert accepted_inclusion_probes(*args) == []
    for old, new, hex_proof in VECTOR_CONSISTENCY:
        proof = [bytes.fromhex(h) for h in hex_proof]
        merkle.verify_consistency(old, new, roots[old - 1], roots[new - 1], proof)
        args2 = (old, new, roots[old - 1], roots[new - 1], proof)
        assert accepted_consistency_probes(*args2) == []


def test_every_inclusion_proof_verifies_and_no_corruption_does():
    """For all n <= 70 and every leaf, the proof verifies and every tamper probe is rejected."""
    for index, size in all_pairs(MAX_SIZE):
        leaves = LEAVES[:size]
        proof, root = ref_path(index, leaves), ref_mth(leaves)
        merkle.verify_inclusion(leaves[index], index, size, proof, root)
        if proof:
            assert accepted_inclusion_probes(leaves[index], index, size, proof, root) == [], (
                index,
                size,
            )


def test_every_consistency_proof_verifies_and_no_corruption_does():
    """For all 0 < m < n <= 70 the proof verifies and every tamper probe is rejected."""
    for old, new in all_pairs(MAX_SIZE):
        if old == 0:
            continue
        proof = ref_subproof(old, LEAVES[:new], b=True)
        old_root, new_root = ref_mth(LEAVES[:old]), ref_mth(LEAVES[:new])
        merkle.verify_consistency(old, new, old_root, new_root, proof)
        assert accepted_consistency_probes(old, new, old_root, new_root, proof) == [], (old, new)


def test_a_proof_for_one_size_does_not_verify_at_another():
    """An inclusion proof checked against another size's root, or the wrong index, is rejected."""
    leaves = LEAVES[:21]
    proof, root = ref_path(6, leaves), ref_mth(leaves)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(leaves[6], 6, 20, proof, ref_mth(LEAVES[:20]))
    with pytest.raises(ProofError):
        merkle.verify_inclusion(leaves[6], 7, 21, proof, root)


def test_single_leaf_tree_needs_an_empty_proof():
    """In a one-leaf tree the root is the leaf hash and the proof is empty."""
    merkle.verify_inclusion(LEAVES[0], 0, 1, [], LEAVES[0])
    with pytest.raises(ProofError):
        merkle.verify_inclusion(LEAVES[0], 0, 1, [], SOME_HASH)
    with pytest.raises(ProofError, match="outside"):
        merkle.verify_inclusion(LEAVES[0], 0, 0, [], merkle.EMPTY_ROOT)


def test_trivial_consistency_still_checks_the_roots():
    """0->n needs the empty root and no proof; n->n needs equal roots and no proof."""
    root5 = ref_mth(LEAVES[:5])
    merkle.verify_consistency(0, 5, merkle.EMPTY_ROOT, root5, [])
    merkle.verify_consistency(0, 0, merkle.EMPTY_ROOT, merkle.EMPTY_ROOT, [])
    merkle.verify_consistency(5, 5, root5, root5, [])
    bad = [
        (0, 5, SOME_HASH, root5, []),
        (0, 5, merkle.EMPTY_ROOT, root5, [root5]),
        (5, 5, root5, SOME_HASH, []),
        (5, 5, root5, root5, [root5]),
        (6, 5, root5, root5, []),
        (-1, 5, root5, root5, []),
    ]
    for args in bad:
        with pytest.raises(ProofError):
            merkle.verify_consistency(*args)


def test_hashes_of_the_wrong_length_are_rejected():
    """A truncated leaf, root or proof hash is a ProofError before any hashing."""
    with pytest.raises(ProofError, match="32 bytes"):
        merkle.verify_inclusion(LEAVES[0][:31], 0, 1, [], LEAVES[0])
    with pytest.raises(ProofError, match="32 bytes"):
        merkle.verify_consistency(1, 2, LEAVES[0], b"", [LEAVES[1]])


# --- scale (speed is measured by `s284 bench audit`, not asserted here) ----------------


@pytest.mark.slow
def test_a_million_leaves_appended_in_batches_give_the_whole_trees_root():
    """1,000,000 leaves appended 1,000 at a time through stored frontiers give the same
    root as building the tree at once (the store's path and the verifier's agree)."""
    hashes = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(1_000_000)]
    frontier: dict[Position, bytes] = {}
    for start in range(0, len(hashes), 1000):
        new = merkle.completed_nodes(start, hashes[start : start + 1000], list(frontier.values()))
        frontier |= {(level, index): h for level, index, h in new}
        frontier = {p: frontier[p] for p in merkle.frontier_positions(start + 1000)}
    assert merkle.root(hashes) == merkle.root_from_frontier(list(frontier.values()))
