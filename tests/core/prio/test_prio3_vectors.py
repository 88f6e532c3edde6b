"""Prio3Count, Prio3Sum and Prio3Histogram of VDAF-08 against the draft's own vectors.

Sharding (the client's half) must give the vectors' public share and input shares byte for
byte from their nonce and randomness; the tests' aggregators (aggregator.py) must then give
their prep shares, prep messages, output shares, aggregate shares and result, a second check
of the proof and the joint randomness.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.core.prio import aggregator
from tests.core.prio.vectors_util import PRIO3_VECTORS, load, vdaf_of
from tray_app.core.rules.prio.prio3 import Prio3


def _reports(name: str) -> list[tuple[Prio3, dict[str, Any], dict[str, Any]]]:
    vector = load(name)
    return [(vdaf_of(name, vector), vector, report) for report in vector["prep"]]


CASES = [(name, i) for name in PRIO3_VECTORS for i in range(len(load(name)["prep"]))]


@pytest.mark.parametrize(("name", "index"), CASES)
def test_sharding_reproduces_the_public_share_and_every_input_share(name: str, index: int) -> None:
    vdaf, _vector, report = _reports(name)[index]
    rand = bytes.fromhex(report["rand"])
    assert len(rand) == vdaf.rand_size
    shares = vdaf.shard(report["measurement"], bytes.fromhex(report["nonce"]), rand)
    assert shares.public_share.hex() == report["public_share"]
    assert [s.hex() for s in shares.input_shares] == report["input_shares"]


@pytest.mark.parametrize(("name", "index"), CASES)
def test_the_tests_aggregators_reproduce_preparation(name: str, index: int) -> None:
    vdaf, vector, report = _reports(name)[index]
    verify_key, nonce = bytes.fromhex(vector["verify_key"]), bytes.fromhex(report["nonce"])
    public_share = bytes.fromhex(report["public_share"])
    steps = [
        aggregator.prep_init(vdaf, verify_key, j, nonce, public_share, bytes.fromhex(share))
        for j, share in enumerate(report["input_shares"])
    ]
    assert [prep_share.encode(vdaf).hex() for _, prep_share in steps] == report["prep_shares"][0]
    message = aggregator.prep_shares_to_prep(vdaf, [prep_share for _, prep_share in steps])
    assert [message.hex()] == report["prep_messages"]
    field = vdaf.circuit.field
    outs = [aggregator.prep_next(state, message) for state, _ in steps]
    assert [[field.encode_vec([x]).hex() for x in out] for out in outs] == report["out_shares"]


@pytest.mark.parametrize("name", PRIO3_VECTORS)
def test_aggregation_reproduces_the_aggregate_shares_and_result(name: str) -> None:
    vector = load(name)
    vdaf = vdaf_of(name, vector)
    verify_key = bytes.fromhex(vector["verify_key"])
    per_aggregator: list[list[list[int]]] = [[] for _ in range(vdaf.shares)]
    for report in vector["prep"]:
        outs = aggregator.prepare(
            vdaf,
            verify_key,
            bytes.fromhex(report["nonce"]),
            bytes.fromhex(report["public_share"]),
            [bytes.fromhex(s) for s in report["input_shares"]],
        )
        for j, out in enumerate(outs):
            per_aggregator[j].append(out)
    agg_shares = [aggregator.aggregate(vdaf, outs) for outs in per_aggregator]
    assert [vdaf.circuit.field.encode_vec(a).hex() for a in agg_shares] == vector["agg_shares"]
    assert aggregator.unshard(vdaf, agg_shares, len(vector["prep"])) == vector["agg_result"]


def test_the_share_sizes_are_those_of_dap_prio_notes() -> None:
    # dap-prio.md §2.3, VDAF-08 sizes with 2 shares: (public, leader, helper, rand)
    from tray_app.core.rules.prio.prio3 import prio3_count, prio3_histogram, prio3_sum

    for vdaf, sizes in (
        (prio3_count(), (0, 48, 32, 48)),
        (prio3_sum(8), (32, 656, 48, 80)),
        (prio3_histogram(4, 2), (32, 256, 48, 80)),
    ):
        shares = vdaf.shard(1, bytes(16), bytes(vdaf.rand_size))
        assert (len(shares.public_share), len(shares.leader), len(shares.helpers[0]), vdaf.rand_size) == sizes
