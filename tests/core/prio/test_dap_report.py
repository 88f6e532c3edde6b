"""The DAP-09 report: its layout, the info and AAD its shares are sealed with, and a round
trip through the tests' two aggregators back to the plaintext measurements."""

from __future__ import annotations

import secrets

import pytest

from tests.core.prio import aggregator
from tray_app.core.errors import MalformedError
from tray_app.core.rules.prio import (
    DAP_09_VDAF_08,
    HpkeConfig,
    ReportRandomness,
    decode_task_id,
    encode_task_id,
    make_report,
    prio3_count,
    prio3_histogram,
    prio3_sum,
    randomness_size,
    round_time,
    upload_path,
    upload_url,
)
from tray_app.core.rules.prio.dap_report import (
    ROLE_HELPER,
    ROLE_LEADER,
    input_share_aad,
    input_share_info,
    plaintext_input_share,
)
from tray_app.core.rules.prio.hpke import open_base, public_key_of
from tray_app.core.rules.prio.prio3 import Prio3

TASK_ID = bytes(range(100, 132))
LEADER_SK = bytes(range(32))
HELPER_SK = bytes(range(32, 64))
LEADER = HpkeConfig(1, 0x0020, 0x0001, 0x0001, public_key_of(LEADER_SK))
HELPER = HpkeConfig(200, 0x0020, 0x0001, 0x0001, public_key_of(HELPER_SK))
VERIFY_KEY = bytes(16)  # the aggregators' secret; the client never sees it


def _report(vdaf: Prio3, measurement: int, randomness: bytes | None = None, time: int = 1_764_633_599) -> bytes:
    rand = ReportRandomness.from_bytes(vdaf, randomness or secrets.token_bytes(randomness_size(vdaf)))
    return make_report(
        task_id=TASK_ID,
        vdaf=vdaf,
        measurement=measurement,
        time=time,
        time_precision=3600,
        leader_config=LEADER,
        helper_config=HELPER,
        randomness=rand,
    ).encoded


def test_the_profile_is_named_and_says_how_to_upload() -> None:
    assert DAP_09_VDAF_08.name == "dap-09+vdaf-08"
    assert (DAP_09_VDAF_08.upload_method, DAP_09_VDAF_08.report_media_type) == ("PUT", "application/dap-report")
    assert DAP_09_VDAF_08.hpke_config_list_media_type == "application/dap-hpke-config-list"
    assert upload_path(TASK_ID) == f"tasks/{encode_task_id(TASK_ID)}/reports"
    assert upload_url("https://leader.example/dap/", TASK_ID) == f"https://leader.example/dap/{upload_path(TASK_ID)}"


def test_the_report_layout_field_by_field() -> None:
    vdaf = prio3_count()
    randomness = secrets.token_bytes(randomness_size(vdaf))
    rand = ReportRandomness.from_bytes(vdaf, randomness)
    data = _report(vdaf, 1, randomness)
    assert len(data) == 230  # dap-prio.md §2.5: a DAP-09 Count report
    shares = vdaf.shard(1, rand.report_id, rand.vdaf_rand)
    time = 1_764_633_599 - 1_764_633_599 % 3600
    expected_prefix = rand.report_id + time.to_bytes(8, "big") + bytes(4)  # empty public share
    assert data.startswith(expected_prefix)
    at = len(expected_prefix)
    # leader: config id, enc (32 bytes, u16-prefixed), payload (u32-prefixed) = 2+4+48 plaintext + 16 tag
    assert data[at] == 1 and data[at + 1 : at + 3] == b"\x00\x20"
    assert data[at + 3 : at + 35] == public_key_of(rand.leader_ephemeral)
    assert int.from_bytes(data[at + 35 : at + 39], "big") == 2 + 4 + len(shares.leader) + 16
    at += 39 + 2 + 4 + len(shares.leader) + 16
    assert data[at] == 200 and data[at + 3 : at + 35] == public_key_of(rand.helper_ephemeral)
    assert len(data) == at + 39 + 2 + 4 + len(shares.helpers[0]) + 16


def test_the_shares_are_sealed_with_dap_09s_info_and_aad() -> None:
    vdaf = prio3_histogram(4, 2)
    randomness = secrets.token_bytes(randomness_size(vdaf))
    rand = ReportRandomness.from_bytes(vdaf, randomness)
    data = _report(vdaf, 2, randomness)
    parsed = aggregator.decode_report(data)
    shares = vdaf.shard(2, rand.report_id, rand.vdaf_rand)
    assert parsed.public_share == shares.public_share and len(parsed.public_share) == 32
    # written out by hand from DAP-09 §4.3.2, not with the module's helpers
    aad = TASK_ID + rand.report_id + parsed.time.to_bytes(8, "big") + (32).to_bytes(4, "big") + shares.public_share
    assert input_share_aad(TASK_ID, rand.report_id, parsed.time, shares.public_share) == aad
    assert input_share_info(ROLE_LEADER) == b"dap-09 input share\x01\x02"
    assert input_share_info(ROLE_HELPER) == b"dap-09 input share\x01\x03"
    leader_pt = open_base(parsed.leader.enc, LEADER_SK, b"dap-09 input share\x01\x02", aad, parsed.leader.payload)
    helper_pt = open_base(parsed.helper.enc, HELPER_SK, b"dap-09 input share\x01\x03", aad, parsed.helper.payload)
    assert leader_pt == b"\x00\x00" + len(shares.leader).to_bytes(4, "big") + shares.leader
    assert helper_pt == plaintext_input_share(shares.helpers[0])
    assert helper_pt == b"\x00\x00" + (48).to_bytes(4, "big") + shares.helpers[0]


def test_the_same_randomness_gives_the_same_bytes_and_fresh_randomness_other_bytes() -> None:
    vdaf = prio3_sum(8)
    randomness = secrets.token_bytes(randomness_size(vdaf))
    assert _report(vdaf, 100, randomness) == _report(vdaf, 100, randomness)
    assert _report(vdaf, 100) != _report(vdaf, 100)


@pytest.mark.parametrize(
    ("vdaf", "measurements", "expected"),
    [
        (prio3_count(), [1, 0, 1, 1, 0], 3),
        (prio3_sum(8), [0, 255, 17, 100], 372),
        (prio3_histogram(10), [3, 3, 9, 0, 3], [1, 0, 0, 3, 0, 0, 0, 0, 0, 1]),
    ],
    ids=["count", "sum8", "histogram10"],
)
def test_reports_decrypt_verify_and_add_up_at_the_tests_aggregators(
    vdaf: Prio3, measurements: list[int], expected: int | list[int]
) -> None:
    reports = [_report(vdaf, m) for m in measurements]
    result = aggregator.aggregate_reports(vdaf, VERIFY_KEY, TASK_ID, reports, LEADER_SK, HELPER_SK)
    assert result == expected


def test_a_report_for_another_task_does_not_open() -> None:
    from cryptography.exceptions import InvalidTag

    data = _report(prio3_count(), 1)
    other_task = bytes(32)
    with pytest.raises(InvalidTag):
        aggregator.aggregate_reports(prio3_count(), VERIFY_KEY, other_task, [data], LEADER_SK, HELPER_SK)


def test_time_is_rounded_down_to_the_precision() -> None:
    assert round_time(1_764_633_599, 3600) == 1_764_630_000
    assert round_time(1_764_630_000, 3600) == 1_764_630_000
    assert round_time(59, 60) == 0
    with pytest.raises(ValueError, match="precision"):
        round_time(10, 0)
    data = _report(prio3_count(), 0, time=1_764_633_599)
    assert aggregator.decode_report(data).time == 1_764_630_000


def test_task_ids_are_unpadded_url_safe_base64() -> None:
    task_id = bytes([0xFB, 0xFF] * 16)
    text = encode_task_id(task_id)
    assert len(text) == 43 and "=" not in text and "-" in text and "_" in text
    assert decode_task_id(text) == task_id
    for bad in (text + "=", text[:-1], text + "AA", text.replace("-", "+"), "", "é" * 43, text[:-1] + "!"):
        with pytest.raises(MalformedError, match="URL-safe base64"):
            decode_task_id(bad)


def test_wrong_sizes_and_unsupported_configs_are_refused() -> None:
    vdaf = prio3_count()
    rand = ReportRandomness.from_bytes(vdaf, bytes(randomness_size(vdaf)))
    unsupported = HpkeConfig(2, 0x0010, 0x0001, 0x0001, bytes(65))

    def report(task_id: bytes = TASK_ID, leader: HpkeConfig = LEADER, of: Prio3 = vdaf) -> None:
        make_report(
            task_id=task_id,
            vdaf=of,
            measurement=1,
            time=0,
            time_precision=60,
            leader_config=leader,
            helper_config=HELPER,
            randomness=rand,
        )

    report()
    with pytest.raises(ValueError, match="not supported"):
        report(leader=unsupported)
    with pytest.raises(ValueError, match="32 bytes"):
        report(task_id=bytes(16))
    with pytest.raises(ValueError, match="two aggregators"):
        report(of=prio3_count(3))
    with pytest.raises(ValueError, match="random bytes"):
        ReportRandomness.from_bytes(vdaf, bytes(10))
