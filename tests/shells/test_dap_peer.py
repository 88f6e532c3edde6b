"""The tray's DAP-09/VDAF-08 client (tray_app/core/rules/prio/) against an implementation nobody
here wrote: divviup-ts (``@divviup/prio3`` 0.8.0 with ``@hpke/core``, as
tests/support/node_dap/package-lock.json pins them) playing both aggregators, a leader and a
helper, in two Node processes on 127.0.0.1 (tests/support/dap_aggregators.py).

* divviup-ts shards the same measurement, nonce and randomness into the same bytes as our client.
* Our client fetches both HPKE configurations over HTTP (the leader lists a P-256 one first, which
  it skips), makes reports with ``make_report`` and fresh ``secrets.token_bytes``, and PUTs them to
  the leader. The leader decrypts its share, the helper its own in an aggregation job, the two run
  Prio3 preparation, and the collected result is the true count, sum or histogram.
* No single server holds a measurement: each one's shares of every report, and its aggregate
  share, are field elements that look nothing like a measurement, while the two together add up
  to it (``_assert_no_single_server_holds_a_measurement`` says why that is the meaningful check).
* A report with a flipped byte in the leader's ciphertext, sealed to a configuration the leader
  does not have, or sent twice is refused at upload; one whose helper share does not decrypt, or
  whose proof is false (a count of 2), is rejected in preparation. None of them is counted.

docs/dap.md, "The independent peer", says which parts of the servers are DAP-09 and which are
test-only. In CI a skip here is a failure (tests/conftest.py): .ci/run installs Node and the
locked packages.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.dap_aggregators import (
    Collected,
    DapAggregators,
    Response,
    VdafSpec,
    node_dap_missing,
    shard_with_divviup,
)
from tray_app.core.rules.prio import (
    DAP_09_VDAF_08,
    DapReport,
    HpkeConfig,
    Prio3,
    ReportRandomness,
    clamp_to_bits,
    decode_hpke_config_list,
    make_report,
    optimal_chunk_length,
    prio3_count,
    prio3_histogram,
    prio3_sum,
    randomness_size,
    select_hpke_config,
    upload_url,
)
from tray_app.core.rules.prio.dap_report import HpkeCiphertext
from tray_app.core.rules.prio.flp import CountCircuit
from tray_app.core.rules.prio.prio3 import PRIO3_COUNT_ID

_MISSING = node_dap_missing()
pytestmark = pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")

# The two fields' moduli, written out from draft-irtf-cfrg-vdaf-08 ("Parameters"), not taken from
# either implementation.
P64 = 2**32 * 4294967295 + 1
P128 = 2**66 * 4611686018427387897 + 1
FORMATS = ("png", "jpeg", "webp", "gif")  # an enum field, its values in the manifest's order
PROBLEM = "urn:ietf:params:ppm:dap:error:"


@dataclass(frozen=True)
class Case:
    """One VDAF: its parameters for both sides, the approved record values, how the tray turns
    a value into a measurement, and (written from the draft) the measurement's encoding."""

    spec: VdafSpec
    client: Prio3
    values: tuple[Any, ...]
    modulus: int
    domain: range  # every valid measurement
    max_output: int  # the largest element of one report's output share

    def measurement(self, value: Any) -> int:
        if self.spec.name == "count":
            return int(value)
        if self.spec.name == "sum":
            assert self.spec.bits is not None
            return clamp_to_bits(value, self.spec.bits)[0]
        return FORMATS.index(value)

    def encode(self, m: int) -> list[int]:
        """The encoded measurement: Count one element, Sum its bits (least significant first),
        Histogram one-hot."""
        if self.spec.name == "count":
            return [m]
        if self.spec.name == "sum":
            assert self.spec.bits is not None
            return [(m >> i) & 1 for i in range(self.spec.bits)]
        return [int(i == m) for i in range(len(FORMATS))]

    def output(self, m: int) -> list[int]:
        """The output share's plaintext: Sum's bits are weighed back into one element."""
        return [m] if self.spec.name == "sum" else self.encode(m)

    def truth(self, measurements: Sequence[int]) -> int | list[int]:
        if self.spec.name == "histogram":
            return [measurements.count(i) for i in range(len(FORMATS))]
        return sum(measurements)


CHUNK = optimal_chunk_length(len(FORMATS))
CASES = {
    "count": Case(
        VdafSpec("count"), prio3_count(), (True, False, True, True, False, True, False, True), P64, range(2), 1
    ),
    "sum": Case(
        VdafSpec("sum", bits=8), prio3_sum(8), (0, 1, 17, 255, 300, 42, 128, 7), P128, range(256), 255
    ),  # 300 is clamped to 255
    "histogram": Case(
        VdafSpec("histogram", length=len(FORMATS), chunk_length=CHUNK),
        prio3_histogram(len(FORMATS), CHUNK),
        ("png", "gif", "png", "webp", "jpeg", "png", "gif"),
        P128,
        range(len(FORMATS)),
        1,
    ),
}


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[[VdafSpec], DapAggregators]]:
    """Starts a leader and a helper for a new task; stops every pair at teardown."""
    started: list[DapAggregators] = []

    def _start(spec: VdafSpec) -> DapAggregators:
        aggregators = DapAggregators.start(
            task_id=secrets.token_bytes(32),
            vdaf=spec,
            verify_key=secrets.token_bytes(16),
            log_dir=tmp_path / f"dap-{len(started)}",
        )
        started.append(aggregators)
        return aggregators

    yield _start
    for aggregators in started:
        aggregators.stop()


# ---------------------------------------------------------------------------------------------
# the client's side, as the tray does it


def _hpke_configs(aggregators: DapAggregators) -> tuple[HpkeConfig, HpkeConfig]:
    """Both configurations over HTTP, chosen with select_hpke_config."""
    bodies = {}
    for role in ("leader", "helper"):
        response = aggregators.hpke_config_list(role)
        assert (response.status, response.content_type) == (200, DAP_09_VDAF_08.hpke_config_list_media_type)
        bodies[role] = response.body
    # the leader prefers a DHKEM(P-256) configuration; the client skips it for its X25519 one
    offered = decode_hpke_config_list(bodies["leader"])
    assert [(c.kem_id, c.supported) for c in offered] == [(0x0010, False), (0x0020, True)]
    leader = select_hpke_config(bodies["leader"], "the leader")
    assert leader == offered[1] and leader.config_id == aggregators.leader.config_id
    helper = select_hpke_config(bodies["helper"], "the helper")
    assert decode_hpke_config_list(bodies["helper"]) == (helper,)
    assert helper.config_id == aggregators.helper.config_id
    return leader, helper


def _report(
    aggregators: DapAggregators, vdaf: Prio3, measurement: int, configs: tuple[HpkeConfig, HpkeConfig]
) -> DapReport:
    return make_report(
        task_id=aggregators.task_id,
        vdaf=vdaf,
        measurement=measurement,
        time=int(time.time()),
        time_precision=3600,
        leader_config=configs[0],
        helper_config=configs[1],
        randomness=ReportRandomness.from_bytes(vdaf, secrets.token_bytes(randomness_size(vdaf))),
    )


def _upload(aggregators: DapAggregators, body: bytes) -> Response:
    url = upload_url(aggregators.leader.url, aggregators.task_id)
    return aggregators.upload(url, body, DAP_09_VDAF_08.report_media_type)


def _flip_payload_byte(ciphertext: HpkeCiphertext, at: int = 5) -> HpkeCiphertext:
    payload = bytearray(ciphertext.payload)
    payload[at] ^= 0x40
    return dataclasses.replace(ciphertext, payload=bytes(payload))


def _problem_type(response: Response) -> str:
    assert response.content_type == "application/problem+json", response
    type_: str = response.json()["type"]
    assert type_.startswith(PROBLEM), type_
    return type_.removeprefix(PROBLEM)


# ---------------------------------------------------------------------------------------------
# the tests


@pytest.mark.parametrize("name", list(CASES))
def test_divviup_shards_the_same_bytes_as_our_client(name: str) -> None:
    case = CASES[name]
    cases = [
        {"measurement": m, "nonce": secrets.token_hex(16), "rand": secrets.token_hex(case.client.rand_size)}
        for m in {"count": (0, 1), "sum": (0, 1, 170, 255), "histogram": (0, 1, 2, 3)}[name]
    ]
    theirs = shard_with_divviup(case.spec, cases)
    for given, shards in zip(cases, theirs, strict=True):
        ours = case.client.shard(given["measurement"], bytes.fromhex(given["nonce"]), bytes.fromhex(given["rand"]))
        assert shards["public_share"] == ours.public_share.hex(), given
        assert shards["input_shares"] == [share.hex() for share in ours.input_shares], given


@pytest.mark.parametrize("name", list(CASES))
def test_two_divviup_aggregators_recover_the_true_aggregate(
    name: str, start: Callable[[VdafSpec], DapAggregators]
) -> None:
    case = CASES[name]
    aggregators = start(case.spec)
    configs = _hpke_configs(aggregators)
    measurements = [case.measurement(value) for value in case.values]
    if name == "sum":
        assert clamp_to_bits(300, 8) == (255, True) and measurements.count(255) == 2
    sent: dict[str, int] = {}
    for m in measurements:
        report = _report(aggregators, case.client, m, configs)
        response = _upload(aggregators, report.encoded)
        assert response.status == 201, (response, aggregators.logs())
        sent[report.report_id.hex()] = m

    collected = aggregators.collect()

    assert collected.report_count == len(measurements)
    assert collected.result == case.truth(measurements)
    assert collected.rejected == [] and collected.refused_at_upload == []
    _assert_no_single_server_holds_a_measurement(case, aggregators, sent, collected)


def _assert_no_single_server_holds_a_measurement(
    case: Case, aggregators: DapAggregators, sent: dict[str, int], collected: Collected
) -> None:
    """What each server alone decrypted or computed, report by report, from its own test-only
    ``/internal/shares``; the helper's measurement share is the one it expanded from its seed.

    Measurements are tiny (a bit, a byte, a one-hot vector of 4), so "the share is not equal to
    this measurement" alone says little: a server holding the plaintext of *another* report would
    pass it. The meaningful check is against the whole domain, element by element. A share is a
    uniformly random vector of field elements (p ≈ 2^64 or 2^128), so the chance that any element
    of an honest share is 0 or 1 (or, for Sum's output share, any of 0..255) is at most ~2^-50 over
    this test. A client or server that put a measurement, or a bit of one, in one server's hands,
    would fail it at once. And the two servers' shares must still add up to the measurement, or
    "random-looking" would be vacuous: they would be random, but they would not be shares."""
    leader, helper = aggregators.shares("leader"), aggregators.shares("helper")
    assert set(leader) == set(helper) == set(sent)
    encodings = [case.encode(m) for m in case.domain]
    p = case.modulus
    for report_id, m in sent.items():
        ours = (leader[report_id], helper[report_id])
        assert [s.status for s in ours] == ["finished", "finished"]
        meas = [s.measurement_share or [] for s in ours]
        out = [s.output_share or [] for s in ours]
        # together: the measurement
        assert [(a + b) % p for a, b in zip(*meas, strict=True)] == case.encode(m)
        assert [(a + b) % p for a, b in zip(*out, strict=True)] == case.output(m)
        # alone: nothing like any measurement there could be
        for share, output in zip(meas, out, strict=True):
            assert share not in encodings
            assert not set(share) & {0, 1}, (report_id, share)
            assert not set(output) & set(range(case.max_output + 1)), (report_id, output)
    # the aggregate shares: each server alone does not hold the total, or any count or sum this
    # batch could have
    possible = set(range(case.max_output * len(sent) + 1))
    truth = collected.result if isinstance(collected.result, list) else [collected.result]
    for aggregate in (collected.leader_aggregate_share, collected.helper_aggregate_share):
        assert aggregate != truth
        assert not set(aggregate) & possible, aggregate
    shares = zip(collected.leader_aggregate_share, collected.helper_aggregate_share, strict=True)
    assert [(a + b) % p for a, b in shares] == truth


def test_the_leader_refuses_what_it_cannot_decrypt_and_does_not_count_it(
    start: Callable[[VdafSpec], DapAggregators],
) -> None:
    case = CASES["count"]
    aggregators = start(case.spec)
    configs = _hpke_configs(aggregators)
    good = [1, 0, 1, 1]
    for m in good:
        assert _upload(aggregators, _report(aggregators, case.client, m, configs).encoded).status == 201

    # a flipped byte in the leader's ciphertext: the AEAD tag fails, the leader refuses the report
    tampered = _report(aggregators, case.client, 1, configs)
    flipped = dataclasses.replace(
        tampered, leader_encrypted_input_share=_flip_payload_byte(tampered.leader_encrypted_input_share)
    )
    response = _upload(aggregators, flipped.encoded)
    assert response.status == 400 and _problem_type(response) == "reportRejected"
    assert "does not decrypt" in response.json()["detail"]
    # the same report untouched is still taken: only the flipped byte was wrong
    assert _upload(aggregators, tampered.encoded).status == 201
    good.append(1)
    # ... and once only: the same report id again is refused
    response = _upload(aggregators, tampered.encoded)
    assert response.status == 400 and _problem_type(response) == "reportRejected"
    # sealed to a configuration id the leader does not have (its key, another id)
    stale = dataclasses.replace(configs[0], config_id=(configs[0].config_id + 100) % 256)
    response = _upload(aggregators, _report(aggregators, case.client, 1, (stale, configs[1])).encoded)
    assert response.status == 400 and _problem_type(response) == "outdatedConfig"
    # not a report at all, or not sent as one
    assert _problem_type(_upload(aggregators, flipped.encoded[:-1])) == "invalidMessage"
    url = upload_url(aggregators.leader.url, aggregators.task_id)
    response = aggregators.upload(url, tampered.encoded, "text/plain")
    assert response.status == 415

    collected = aggregators.collect()

    assert (collected.report_count, collected.result) == (len(good), sum(good))
    assert collected.rejected == []
    refused = [(r["report_id"], r["error"]) for r in collected.refused_at_upload]
    assert (tampered.report_id.hex(), "reportRejected") in refused
    assert [error for _, error in refused] == ["reportRejected", "reportRejected", "outdatedConfig"]
    assert tampered.report_id.hex() in aggregators.shares("leader")  # the good copy, counted once


class _CountOfTwo(CountCircuit):
    """A cheating client's encoding: a count of 2, which a valid proof cannot cover."""

    def encode(self, measurement: int) -> list[int]:
        return [measurement % self.field.modulus]


def test_preparation_rejects_a_bad_helper_share_and_a_false_proof(
    start: Callable[[VdafSpec], DapAggregators],
) -> None:
    case = CASES["count"]
    aggregators = start(case.spec)
    configs = _hpke_configs(aggregators)
    good = [1, 1, 0]
    for m in good:
        assert _upload(aggregators, _report(aggregators, case.client, m, configs).encoded).status == 201
    # the leader cannot open the helper's share, so it takes the report; the helper cannot either
    report = _report(aggregators, case.client, 1, configs)
    bad_helper = dataclasses.replace(
        report, helper_encrypted_input_share=_flip_payload_byte(report.helper_encrypted_input_share)
    )
    assert _upload(aggregators, bad_helper.encoded).status == 201
    # a count of 2, sealed and proved as the tray would: only the proof can tell
    cheat = _report(aggregators, Prio3("cheat", PRIO3_COUNT_ID, _CountOfTwo()), 2, configs)
    assert _upload(aggregators, cheat.encoded).status == 201

    collected = aggregators.collect()

    assert (collected.report_count, collected.result) == (len(good), sum(good))
    rejected = {r["report_id"]: (r["by"], r["error"]) for r in collected.rejected}
    assert rejected == {
        bad_helper.report_id.hex(): ("helper", "hpke_decrypt_error"),
        cheat.report_id.hex(): ("helper", "vdaf_prep_error"),  # FLP decide, in the helper's transition
    }
    leader_shares = aggregators.shares("leader")
    assert leader_shares[cheat.report_id.hex()].output_share is None
    assert aggregators.shares("helper")[cheat.report_id.hex()].status == "rejected"
