"""The DAP-09 upload: HPKE configurations and the Report (draft-ietf-ppm-dap-09, "Uploading Reports").

The client side of one wire profile, :data:`DAP_09_VDAF_08` (what running aggregators
speak: Janus 0.7, Divvi Up, Firefox). A later profile (DAP-18 with VDAF-18) changes the
messages, the ``info`` string, the AAD, the media types and the method, and sits beside
this one as another :class:`WireProfile` with its own encoder.

DAP-09 messages use TLS presentation syntax (RFC 8446 §3): integers big-endian, ``<a..b>``
vectors prefixed by their length in as many bytes as ``b`` needs.

* ``HpkeConfigList = HpkeConfig<1..2^16-1>``, ``HpkeConfig { u8 id; u16 kem_id; u16 kdf_id;
  u16 aead_id; opaque public_key<1..2^16-1> }`` ("HPKE Configuration Request"), fetched with
  ``GET {aggregator}/hpke_config`` as ``application/dap-hpke-config-list``, in decreasing order
  of preference: the client takes the first entry with a suite it supports and aborts when
  there is none.
* ``Report { ReportMetadata { u8 report_id[16]; u64 time }; opaque public_share<0..2^32-1>;
  HpkeCiphertext leader_encrypted_input_share; HpkeCiphertext helper_encrypted_input_share }``
  with ``HpkeCiphertext { u8 config_id; opaque enc<1..2^16-1>; opaque payload<1..2^32-1> }``,
  sent as ``PUT {leader}/tasks/{task-id}/reports`` with ``application/dap-report`` ("Upload Request");
  the task id is in URL-safe base64 without padding ("Resource URIs").
* Each input share is sealed as ``SealBase(pk, "dap-09 input share" || 0x01 || server_role,
  InputShareAad, PlaintextInputShare)``, server_role 0x02 for the leader and 0x03 for the
  helper, ``InputShareAad { TaskID task_id; ReportMetadata; opaque public_share<0..2^32-1> }``,
  ``PlaintextInputShare { Extension extensions<0..2^16-1>; opaque payload<0..2^32-1> }`` (no
  extensions here).
* The VDAF's nonce is the report id, and the time is rounded down to a multiple of the task's
  ``time_precision`` (seconds) so that it cannot single the client out.

Every random input is a parameter (:class:`ReportRandomness`): the caller passes
``secrets.token_bytes(randomness_size(vdaf))``; the same randomness gives the same bytes.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass

from ...errors import MalformedError
from .hpke import AEAD_AES_128_GCM, KDF_HKDF_SHA256, KEM_X25519_HKDF_SHA256, X25519_KEY_SIZE, seal_base
from .prio3 import NONCE_SIZE, Prio3, Prio3Shares

__all__ = [
    "DAP_09_VDAF_08",
    "REPORT_ID_SIZE",
    "ROLE_CLIENT",
    "ROLE_HELPER",
    "ROLE_LEADER",
    "TASK_ID_SIZE",
    "DapReport",
    "HpkeCiphertext",
    "HpkeConfig",
    "ReportRandomness",
    "WireProfile",
    "decode_hpke_config_list",
    "decode_task_id",
    "encode_hpke_config_list",
    "encode_task_id",
    "input_share_aad",
    "input_share_info",
    "make_report",
    "plaintext_input_share",
    "randomness_size",
    "report_metadata",
    "round_time",
    "select_hpke_config",
    "upload_path",
    "upload_url",
]

REPORT_ID_SIZE = 16
TASK_ID_SIZE = 32
ROLE_CLIENT = 0x01
ROLE_LEADER = 0x02
ROLE_HELPER = 0x03
_MAX_TIME = 2**64 - 1


@dataclass(frozen=True)
class WireProfile:
    """A pairing of a DAP draft with a VDAF draft, and what its upload looks like."""

    name: str
    dap_version: str  # the draft's domain separation tag, e.g. "dap-09"
    vdaf_version: int  # the VDAF draft's VERSION byte
    upload_method: str
    report_media_type: str
    hpke_config_list_media_type: str
    hpke_config_path: str  # relative to an aggregator's base URL

    @property
    def input_share_label(self) -> bytes:
        return f"{self.dap_version} input share".encode("ascii")


DAP_09_VDAF_08 = WireProfile(
    name="dap-09+vdaf-08",
    dap_version="dap-09",
    vdaf_version=8,
    upload_method="PUT",
    report_media_type="application/dap-report",
    hpke_config_list_media_type="application/dap-hpke-config-list",
    hpke_config_path="hpke_config",
)


# ----------------------------------------------------------------------------------------
# HPKE configurations


@dataclass(frozen=True)
class HpkeConfig:
    """One aggregator HPKE configuration (``HpkeConfig``)."""

    config_id: int
    kem_id: int
    kdf_id: int
    aead_id: int
    public_key: bytes

    @property
    def supported(self) -> bool:
        """The one suite we seal to: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM
        (DAP-09's "Compliance Requirements" make it mandatory), with a 32-byte key."""
        return (
            (self.kem_id, self.kdf_id, self.aead_id) == (KEM_X25519_HKDF_SHA256, KDF_HKDF_SHA256, AEAD_AES_128_GCM)
        ) and len(self.public_key) == X25519_KEY_SIZE

    @property
    def suite(self) -> str:
        """The suite in words, for a message ("kem 0x0020, kdf 0x0001, aead 0x0001")."""
        return f"kem 0x{self.kem_id:04x}, kdf 0x{self.kdf_id:04x}, aead 0x{self.aead_id:04x}"

    def encode(self) -> bytes:
        if not 0 <= self.config_id <= 255 or not 1 <= len(self.public_key) <= 0xFFFF:
            raise ValueError("an HPKE config id is one byte and its public key 1 to 65535 bytes")
        return (
            bytes([self.config_id])
            + self.kem_id.to_bytes(2, "big")
            + self.kdf_id.to_bytes(2, "big")
            + self.aead_id.to_bytes(2, "big")
            + _u16_prefixed(self.public_key)
        )


def encode_hpke_config_list(configs: Sequence[HpkeConfig]) -> bytes:
    """An ``HpkeConfigList`` (what an aggregator serves; used by tests and fakes)."""
    return _u16_prefixed(b"".join(c.encode() for c in configs))


def decode_hpke_config_list(data: bytes) -> tuple[HpkeConfig, ...]:
    """Every entry of an ``HpkeConfigList``, supported or not, in the aggregator's order.

    MalformedError when the bytes are not one: truncated, with bytes after the list, an empty
    list or an empty public key."""
    reader = _Reader(data, "HPKE configuration list")
    body = _Reader(reader.vector(2), "HPKE configuration list")
    reader.end()
    configs: list[HpkeConfig] = []
    while not body.done:
        config_id = body.uint(1)
        kem_id, kdf_id, aead_id = body.uint(2), body.uint(2), body.uint(2)
        public_key = body.vector(2)
        if not public_key:
            raise _malformed("HPKE configuration list", f"configuration {config_id} has an empty public key")
        configs.append(HpkeConfig(config_id, kem_id, kdf_id, aead_id, public_key))
    if not configs:
        raise _malformed("HPKE configuration list", "it is empty")
    return tuple(configs)


def select_hpke_config(data: bytes, aggregator: str = "the aggregator") -> HpkeConfig:
    """The first configuration of an ``HpkeConfigList`` that we can seal to, skipping entries
    with another KEM, KDF or AEAD (DAP-09: the list is in decreasing order of preference).

    MalformedError when the list is malformed, or (titled "Unsupported aggregator") when no
    entry has our suite; ``aggregator`` names who served it in the message."""
    configs = decode_hpke_config_list(data)
    for config in configs:
        if config.supported:
            return config
    offered = "; ".join(config.suite for config in configs[:5])
    raise MalformedError(
        f"{aggregator} offers no HPKE configuration Telemetry Tray can encrypt to (it offers {offered}; "
        "Telemetry Tray needs kem 0x0020, kdf 0x0001, aead 0x0001 with a 32-byte key).",
        title="Unsupported aggregator",
    )


# ----------------------------------------------------------------------------------------
# The report


@dataclass(frozen=True)
class HpkeCiphertext:
    """One sealed input share (``HpkeCiphertext``)."""

    config_id: int
    enc: bytes
    payload: bytes

    def encode(self) -> bytes:
        return bytes([self.config_id]) + _u16_prefixed(self.enc) + _u32_prefixed(self.payload)


@dataclass(frozen=True)
class ReportRandomness:
    """Every random input of one report: the report id (also the VDAF nonce), the VDAF's
    sharding randomness and one ephemeral X25519 private key per aggregator."""

    report_id: bytes
    vdaf_rand: bytes
    leader_ephemeral: bytes
    helper_ephemeral: bytes

    @classmethod
    def from_bytes(cls, vdaf: Prio3, data: bytes) -> ReportRandomness:
        """Split ``randomness_size(vdaf)`` random bytes into the four inputs."""
        if len(data) != randomness_size(vdaf):
            raise ValueError(f"a {vdaf.name} report takes {randomness_size(vdaf)} random bytes, not {len(data)}")
        rand_end = REPORT_ID_SIZE + vdaf.rand_size
        return cls(
            report_id=data[:REPORT_ID_SIZE],
            vdaf_rand=data[REPORT_ID_SIZE:rand_end],
            leader_ephemeral=data[rand_end : rand_end + X25519_KEY_SIZE],
            helper_ephemeral=data[rand_end + X25519_KEY_SIZE :],
        )


def randomness_size(vdaf: Prio3) -> int:
    """Random bytes one report of ``vdaf`` takes (:meth:`ReportRandomness.from_bytes`)."""
    return REPORT_ID_SIZE + vdaf.rand_size + 2 * X25519_KEY_SIZE


@dataclass(frozen=True)
class DapReport:
    """One DAP-09 ``Report`` and its parts: :attr:`encoded` is the upload body."""

    task_id: bytes
    report_id: bytes
    time: int  # seconds since the epoch, rounded down to the task's time precision
    public_share: bytes
    leader_encrypted_input_share: HpkeCiphertext
    helper_encrypted_input_share: HpkeCiphertext

    @property
    def metadata(self) -> bytes:
        return report_metadata(self.report_id, self.time)

    @property
    def encoded(self) -> bytes:
        """The ``application/dap-report`` body."""
        return (
            self.metadata
            + _u32_prefixed(self.public_share)
            + self.leader_encrypted_input_share.encode()
            + self.helper_encrypted_input_share.encode()
        )


def round_time(time: int, time_precision: int) -> int:
    """``time`` (seconds) rounded down to a multiple of ``time_precision`` (seconds)."""
    if time_precision < 1:
        raise ValueError(f"the time precision is at least one second, not {time_precision}")
    if not 0 <= time <= _MAX_TIME:
        raise ValueError(f"a DAP time is a 64-bit count of seconds, not {time}")
    return time - time % time_precision


def report_metadata(report_id: bytes, time: int) -> bytes:
    """``ReportMetadata``: the 16-byte report id, then the time as a 64-bit integer."""
    if len(report_id) != REPORT_ID_SIZE:
        raise ValueError(f"a report id is {REPORT_ID_SIZE} bytes, not {len(report_id)}")
    return report_id + time.to_bytes(8, "big")


def input_share_info(server_role: int, profile: WireProfile = DAP_09_VDAF_08) -> bytes:
    """HPKE ``info`` for an input share: ``"dap-09 input share" || 0x01 || server_role``."""
    if server_role not in (ROLE_LEADER, ROLE_HELPER):
        raise ValueError(f"an input share is for the leader (2) or the helper (3), not {server_role}")
    return profile.input_share_label + bytes([ROLE_CLIENT, server_role])


def input_share_aad(task_id: bytes, report_id: bytes, time: int, public_share: bytes) -> bytes:
    """HPKE AAD for an input share: ``InputShareAad { task_id; ReportMetadata; public_share }``."""
    return _check_task_id(task_id) + report_metadata(report_id, time) + _u32_prefixed(public_share)


def plaintext_input_share(payload: bytes) -> bytes:
    """``PlaintextInputShare`` with no extensions around a VDAF input share."""
    return _u16_prefixed(b"") + _u32_prefixed(payload)


def make_report(
    *,
    task_id: bytes,
    vdaf: Prio3,
    measurement: int,
    time: int,
    time_precision: int,
    leader_config: HpkeConfig,
    helper_config: HpkeConfig,
    randomness: ReportRandomness,
    profile: WireProfile = DAP_09_VDAF_08,
) -> DapReport:
    """One DAP-09 report of ``measurement`` for the task: sharded with ``vdaf`` (nonce = the
    report id), its time rounded down to ``time_precision``, each input share sealed to its
    aggregator's configuration with DAP-09's ``info`` and AAD.

    ReportError when the measurement is out of the VDAF's range; ValueError when a
    configuration is not one we support (pick it with :func:`select_hpke_config`) or the
    randomness or task id has the wrong size."""
    if profile != DAP_09_VDAF_08:
        raise ValueError(f"only the {DAP_09_VDAF_08.name} profile is implemented, not {profile.name}")
    if vdaf.shares != 2:
        raise ValueError(f"DAP has two aggregators; this {vdaf.name} has {vdaf.shares} shares")
    for config in (leader_config, helper_config):
        if not config.supported:
            raise ValueError(f"HPKE configuration {config.config_id} ({config.suite}) is not supported")
    _check_task_id(task_id)
    if len(randomness.report_id) != NONCE_SIZE:
        raise ValueError(f"a report id is {REPORT_ID_SIZE} bytes, not {len(randomness.report_id)}")
    rounded = round_time(time, time_precision)
    shares: Prio3Shares = vdaf.shard(measurement, randomness.report_id, randomness.vdaf_rand)
    aad = input_share_aad(task_id, randomness.report_id, rounded, shares.public_share)
    sealed: list[HpkeCiphertext] = []
    for role, config, share, ephemeral in (
        (ROLE_LEADER, leader_config, shares.leader, randomness.leader_ephemeral),
        (ROLE_HELPER, helper_config, shares.helpers[0], randomness.helper_ephemeral),
    ):
        enc, payload = seal_base(
            config.public_key, input_share_info(role, profile), aad, plaintext_input_share(share), ephemeral
        )
        sealed.append(HpkeCiphertext(config.config_id, enc, payload))
    return DapReport(task_id, randomness.report_id, rounded, shares.public_share, sealed[0], sealed[1])


def encode_task_id(task_id: bytes) -> str:
    """The task id as DAP writes it in URLs: URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(_check_task_id(task_id)).rstrip(b"=").decode("ascii")


def decode_task_id(text: str) -> bytes:
    """A task id from its URL-safe, unpadded base64 (MalformedError unless it is 32 bytes)."""
    raw: bytes | None = None
    if text.isascii() and "=" not in text:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (ValueError, binascii.Error):
            raw = None
    # the round trip refuses what the lenient decoder skipped (characters outside the alphabet)
    if raw is None or len(raw) != TASK_ID_SIZE or encode_task_id(raw) != text:
        raise MalformedError(
            f"A DAP task id is {TASK_ID_SIZE} bytes in URL-safe base64 without padding (43 characters)."
        )
    return raw


def upload_path(task_id: bytes) -> str:
    """``tasks/{task-id}/reports``: where the leader takes reports, relative to its base URL."""
    return f"tasks/{encode_task_id(task_id)}/reports"


def upload_url(leader: str, task_id: bytes) -> str:
    """``{leader}/tasks/{task-id}/reports`` for the leader's base URL."""
    return f"{leader.rstrip('/')}/{upload_path(task_id)}"


# ----------------------------------------------------------------------------------------
# TLS presentation-language helpers


def _check_task_id(task_id: bytes) -> bytes:
    if len(task_id) != TASK_ID_SIZE:
        raise ValueError(f"a DAP task id is {TASK_ID_SIZE} bytes, not {len(task_id)}")
    return task_id


def _u16_prefixed(data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise ValueError(f"{len(data)} bytes do not fit a vector with a 2-byte length")
    return len(data).to_bytes(2, "big") + data


def _u32_prefixed(data: bytes) -> bytes:
    if len(data) > 0xFFFFFFFF:
        raise ValueError(f"{len(data)} bytes do not fit a vector with a 4-byte length")
    return len(data).to_bytes(4, "big") + data


def _malformed(what: str, problem: str) -> MalformedError:
    return MalformedError(f"The {what} is malformed: {problem}.")


class _Reader:
    """Reads TLS-encoded fields off bytes, with MalformedError naming ``what`` on truncation."""

    def __init__(self, data: bytes, what: str) -> None:
        self._data = data
        self._at = 0
        self._what = what

    @property
    def done(self) -> bool:
        return self._at == len(self._data)

    def take(self, n: int) -> bytes:
        if self._at + n > len(self._data):
            raise _malformed(self._what, f"it ends early (byte {len(self._data)}, {n} more needed at {self._at})")
        out = self._data[self._at : self._at + n]
        self._at += n
        return out

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, length_size: int) -> bytes:
        return self.take(self.uint(length_size))

    def end(self) -> None:
        if not self.done:
            raise _malformed(self._what, f"{len(self._data) - self._at} bytes follow its end")
