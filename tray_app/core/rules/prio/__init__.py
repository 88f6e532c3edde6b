"""Split aggregation (DAP with Prio3): the client side of the wire profile DAP-09 with VDAF-08.

Pure functions over maintained libraries, every random input a parameter (docs/dap.md):

* :mod:`.prime_field` — Field64 and Field128, and the polynomial arithmetic of the FLP;
* :mod:`.xof` — XofTurboShake128 of VDAF-08 (pycryptodome, loaded on first use);
* :mod:`.flp` — the FLP prover and the Count, Sum and Histogram validity circuits;
* :mod:`.prio3` — Prio3Count, Prio3Sum(bits) and Prio3Histogram(length, chunk_length) sharding;
* :mod:`.hpke` — RFC 9180 base mode for DHKEM(X25519, HKDF-SHA256)/HKDF-SHA256/AES-128-GCM, with AAD;
* :mod:`.dap_report` — HPKE configurations and the DAP-09 Report, and :data:`DAP_09_VDAF_08`.

Importing the package loads none of the cryptographic libraries.
"""

from __future__ import annotations

from .dap_report import (
    DAP_09_VDAF_08,
    DapReport,
    HpkeConfig,
    ReportRandomness,
    WireProfile,
    decode_hpke_config_list,
    decode_task_id,
    encode_task_id,
    make_report,
    randomness_size,
    round_time,
    select_hpke_config,
    upload_path,
    upload_url,
)
from .prio3 import Prio3, Prio3Shares, clamp_to_bits, optimal_chunk_length, prio3_count, prio3_histogram, prio3_sum

__all__ = [
    "DAP_09_VDAF_08",
    "DapReport",
    "HpkeConfig",
    "Prio3",
    "Prio3Shares",
    "ReportRandomness",
    "WireProfile",
    "clamp_to_bits",
    "decode_hpke_config_list",
    "decode_task_id",
    "encode_task_id",
    "make_report",
    "optimal_chunk_length",
    "prio3_count",
    "prio3_histogram",
    "prio3_sum",
    "randomness_size",
    "round_time",
    "select_hpke_config",
    "upload_path",
    "upload_url",
]
