"""The per-partition hash chain: a missing, reordered or altered row is reported."""

from __future__ import annotations

import dataclasses
import hashlib

from ledger.chain import ChainLink, ChainProblem, chain_hash, verify_chain
from ledger.encoding import b64u_encode, sha256_b64u

PARTITION = 3


def build(n: int, partition: int = PARTITION) -> list[ChainLink]:
    links: list[ChainLink] = []
    prev: str | None = None
    for seq in range(1, n + 1):
        raw = f'{{"envelope":{seq},"text":"row {seq}"}}'.encode()
        event_id = f"00000000-0000-4000-8000-{seq:012d}"
        current = chain_hash(prev, partition, seq, event_id, sha256_b64u(raw))
        links.append(ChainLink(partition, seq, event_id, raw, prev, current))
        prev = current
    return links


def test_chain_hash_formula_pinned() -> None:
    envelope_sha = sha256_b64u(b"envelope bytes")
    # JCS of the five fields, written out by hand (keys sorted, no whitespace)
    first = (
        '{"envelope_sha256":"' + envelope_sha + '","event_id":"e1","ledger_seq":1,'
        '"partition":0,"prev":null}'
    )
    expected_first = b64u_encode(hashlib.sha256(first.encode()).digest())
    assert chain_hash(None, 0, 1, "e1", envelope_sha) == expected_first
    second = (
        '{"envelope_sha256":"' + envelope_sha + '","event_id":"e2","ledger_seq":2,'
        '"partition":0,"prev":"' + expected_first + '"}'
    )
    expected_second = b64u_encode(hashlib.sha256(second.encode()).digest())
    assert chain_hash(expected_first, 0, 2, "e2", envelope_sha) == expected_second


def test_chain_hash_depends_on_every_input() -> None:
    base = chain_hash("p", 0, 1, "e", "h")
    variants = {
        chain_hash(None, 0, 1, "e", "h"),
        chain_hash("q", 0, 1, "e", "h"),
        chain_hash("p", 1, 1, "e", "h"),
        chain_hash("p", 0, 2, "e", "h"),
        chain_hash("p", 0, 1, "f", "h"),
        chain_hash("p", 0, 1, "e", "i"),
    }
    assert base not in variants
    assert len(variants) == 6


def test_intact_chain_verifies() -> None:
    links = build(12)
    assert verify_chain(links) == []
    assert verify_chain(iter(links)) == []  # any iterable
    assert verify_chain([]) == []
    assert len({link.chain_hash for link in links}) == 12


def test_same_rows_in_another_partition_do_not_verify_as_this_one() -> None:
    links = build(3, partition=0)
    moved = [dataclasses.replace(link, partition=1) for link in links]
    problems = verify_chain(moved)
    assert [(p.ledger_seq, p.problem) for p in problems] == [
        (1, "chain hash mismatch"),
        (2, "chain hash mismatch"),
        (3, "chain hash mismatch"),
    ]


def test_removed_link_is_reported() -> None:
    links = build(6)
    del links[2]  # seq 3
    problems = verify_chain(links)
    assert ChainProblem(PARTITION, 4, "gap: expected seq 3") in problems
    assert ChainProblem(PARTITION, 4, "prev hash mismatch") in problems
    assert {p.ledger_seq for p in problems} == {4}  # the rest still links


def test_removed_first_link_is_reported() -> None:
    problems = verify_chain(build(4)[1:])
    assert ChainProblem(PARTITION, 2, "gap: expected seq 1") in problems
    assert ChainProblem(PARTITION, 2, "prev hash mismatch") in problems


def test_reordered_pair_is_reported() -> None:
    links = build(6)
    links[2], links[3] = links[3], links[2]  # seq 4 before seq 3
    problems = verify_chain(links)
    assert ChainProblem(PARTITION, 4, "gap: expected seq 3") in problems
    assert ChainProblem(PARTITION, 4, "prev hash mismatch") in problems
    assert ChainProblem(PARTITION, 3, "gap: expected seq 5") in problems
    assert ChainProblem(PARTITION, 3, "prev hash mismatch") in problems


def test_renumbered_swap_is_still_reported() -> None:
    # swapping the rows but keeping the sequence numbers in order
    links = build(5)
    a, b = links[1], links[2]
    links[1] = dataclasses.replace(b, ledger_seq=2)
    links[2] = dataclasses.replace(a, ledger_seq=3)
    problems = verify_chain(links)
    assert problems
    assert all(p.problem != "gap: expected seq 3" for p in problems)
    assert {p.ledger_seq for p in problems} >= {2, 3}


def test_altered_envelope_byte_is_reported() -> None:
    for position in (0, 5, -1):
        links = build(5)
        raw = bytearray(links[2].envelope_raw)
        raw[position] ^= 0x01
        links[2] = dataclasses.replace(links[2], envelope_raw=bytes(raw))
        assert verify_chain(links) == [ChainProblem(PARTITION, 3, "chain hash mismatch")]


def test_altered_event_id_is_reported() -> None:
    links = build(4)
    links[1] = dataclasses.replace(links[1], event_id="00000000-0000-4000-8000-999999999999")
    assert verify_chain(links) == [ChainProblem(PARTITION, 2, "chain hash mismatch")]


def test_altered_prev_hash_is_reported() -> None:
    links = build(5)
    links[3] = dataclasses.replace(links[3], prev_chain_hash=sha256_b64u(b"forged"))
    assert verify_chain(links) == [ChainProblem(PARTITION, 4, "prev hash mismatch")]
    links = build(5)
    links[0] = dataclasses.replace(links[0], prev_chain_hash=sha256_b64u(b"forged"))
    assert verify_chain(links) == [ChainProblem(PARTITION, 1, "prev hash mismatch")]


def test_altered_chain_hash_is_reported_and_breaks_the_next_link() -> None:
    links = build(5)
    links[1] = dataclasses.replace(links[1], chain_hash=sha256_b64u(b"forged"))
    assert verify_chain(links) == [
        ChainProblem(PARTITION, 2, "chain hash mismatch"),
        ChainProblem(PARTITION, 3, "prev hash mismatch"),
        ChainProblem(PARTITION, 3, "chain hash mismatch"),
    ]


def test_recomputed_tail_is_only_visible_in_the_head_hash() -> None:
    # the chain alone cannot catch an edit whose tail is recomputed: only a changed head
    # hash (compared against an anchor kept elsewhere) reveals it
    links = build(5)
    forged_raw = b'{"forged":true}'
    prev = links[1].chain_hash
    rewritten = links[:2]
    for link in links[2:]:
        raw = forged_raw if link.ledger_seq == 3 else link.envelope_raw
        current = chain_hash(prev, link.partition, link.ledger_seq, link.event_id, sha256_b64u(raw))
        rewritten.append(
            dataclasses.replace(link, envelope_raw=raw, prev_chain_hash=prev, chain_hash=current)
        )
        prev = current
    assert verify_chain(rewritten) == []
    # but the head hash differs, which is what an external anchor would catch
    assert rewritten[-1].chain_hash != links[-1].chain_hash


def test_a_chain_verifies_from_an_archive_cut() -> None:
    links = build(10)
    cut = links[3]
    rest = links[4:]
    assert verify_chain(rest, after_seq=cut.ledger_seq, after_hash=cut.chain_hash) == []
    # without the head at the cut, the remaining rows are not a chain from seq 1
    assert verify_chain(rest) != []


def test_a_wrong_head_at_the_cut_is_reported() -> None:
    links = build(10)
    rest = links[4:]
    problems = verify_chain(rest, after_seq=4, after_hash=links[2].chain_hash)
    assert problems and problems[0].problem == "prev hash mismatch"
    assert problems[0].ledger_seq == 5
    problems = verify_chain(rest, after_seq=3, after_hash=links[3].chain_hash)
    assert [p.problem for p in problems] == ["gap: expected seq 4"]
