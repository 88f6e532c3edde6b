"""Noise: randomized response on boolean and enum fields (DESIGN.md, "Noise").

A field whose manifest offers ``noise`` (an epsilon) may carry it in a scope. Each value it
sends is then kept with probability p = e^ε/(e^ε+k−1) and otherwise replaced by one of the
field's other k−1 values, each as likely (k = 2 for a boolean, the number of declared
values for an enum). So no single answer can be trusted, and the vendor can still correct
its counts (:func:`estimate_counts`, docs/noise.md).

The draw is made once per batch and scope, and is the same every time it is made: it is
keyed by the batch's secret seed (32 bytes from the operating system's generator, made
with the batch and kept with it until its payload is stored), the field's name and the
epsilon, and indexed by the report's place in the batch. The stream is HMAC-SHA256 of a
64-bit block counter (counter mode, as in NIST SP 800-108) under a key derived from the
seed, the field and the epsilon by HMAC-SHA256; each report takes one 64-bit word of it.
Without the seed nobody can tell a kept answer from a replaced one,
and with it the preview, the approval's digest and every retry are the same bytes, and
turning noise off and on again shows the same draw.
"""

from __future__ import annotations

import hmac
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:  # manifest.py imports this module (the bounds of an offer)
    from .manifest import FieldSpec

__all__ = [
    "MAX_EPSILON", "MIN_EPSILON", "NOISE_TYPES", "SEED_BYTES", "Estimate", "NoiseDraw", "epsilon_problem",
    "epsilon_text", "estimate_counts", "keep_probability", "noise_domain", "noise_in_words", "other_probability",
    "standard_error",
]  # fmt: skip

# The field types that can take randomized response: a short list of possible answers.
NOISE_TYPES: Final = frozenset({"boolean", "enum"})
# The epsilons an offer (and a scope) may name. Below 0.1 a boolean's kept answer is barely
# likelier than a replaced one (52.5% against 47.5%): the vendor's counts would need
# hundreds of times more reports to mean anything, and excluding the field says the same
# honestly. Above 10 even a 500-value enum keeps 97.8% of its answers and a boolean 99.995%:
# noise in name only. Every deployed randomized response (RAPPOR's ln 3, Apple's 1 to 8) fits.
MIN_EPSILON: Final = 0.1
MAX_EPSILON: Final = 10.0
SEED_BYTES: Final = 32  # the batch's secret: 256 bits, from secrets.token_bytes

_LABEL: Final = b"telemetry-tray/noise/v1\x00"  # domain separation of the derived key
_SPAN: Final = 2**64  # each report's draw is one 64-bit word of the stream
_WORDS_PER_BLOCK: Final = 4  # a SHA-256 block is four words
_OTHER: Final = "(other)"  # payload.OTHER (not imported: payload imports this module through scope)


def keep_probability(epsilon: float, k: int) -> float:
    """p = e^ε/(e^ε+k−1): how likely an answer is sent as it is (written to stay exact for large ε)."""
    return 1.0 / (1.0 + (k - 1) * math.exp(-epsilon))


def other_probability(epsilon: float, k: int) -> float:
    """q = 1/(e^ε+k−1): how likely an answer is sent as one given other value, (1−p)/(k−1)."""
    return 1.0 / (math.exp(epsilon) + k - 1)


def epsilon_text(epsilon: float) -> str:
    """An epsilon as the words show it: ``1``, ``0.5``."""
    return f"{epsilon:g}"


def noise_in_words(epsilon: float, k: int) -> str:
    """What noise at ``epsilon`` does to a field of ``k`` values, for a person:
    ``about 27% of these answers are replaced at random before sending: …`` (ε=1, k=2)."""
    percent = round(100 * (1 - keep_probability(epsilon, k)))
    if percent < 1:
        return (
            "fewer than 1% of these answers are replaced at random before sending: "
            "the vendor can still count the total, and can trust almost every single answer"
        )
    return (
        f"about {percent}% of these answers are replaced at random before sending: "
        "the vendor can still count the total, but no single answer can be trusted"
    )


def epsilon_problem(value: object) -> str | None:
    """Why ``value`` cannot be an epsilon, to follow the value quoted (``1e9 is out of range;
    …``), or None if it can be one: a number from :data:`MIN_EPSILON` to :data:`MAX_EPSILON`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "is not a number; write the epsilon, like 1.0"
    if not MIN_EPSILON <= value <= MAX_EPSILON:  # NaN compares false, so it is out of range too
        return (
            f"is out of range; an epsilon is from {epsilon_text(MIN_EPSILON)} (the most noise) "
            f"to {epsilon_text(MAX_EPSILON)} (the least)"
        )
    return None


def noise_domain(spec: FieldSpec) -> tuple[bool, ...] | tuple[str, ...]:
    """The values a noisy answer is drawn from: ``(False, True)`` for a boolean, the declared
    values (in the manifest's order) for an enum, none for any other type."""
    if spec.type == "boolean":
        return (False, True)
    if spec.type == "enum":
        return spec.values
    return ()


class NoiseDraw:
    """The noise of one field of one batch at one epsilon.

    The same seed, field name and epsilon give the same draw, report by report; nothing else
    (other fields, coarsening, mode, how many reports follow) changes it. A value outside
    ``domain`` (no checked report has one) is replaced by any declared value, so a noisy
    field never sends what it does not declare; a missing value stays missing.
    """

    def __init__(self, seed: bytes, name: str, epsilon: float, domain: Sequence[Any]) -> None:
        if len(seed) < SEED_BYTES:
            raise ValueError(f"a noise seed is {SEED_BYTES} bytes or more")
        if len(domain) < 2:
            raise ValueError("noise needs two values or more to draw from")
        message = _LABEL + name.encode("utf-8") + b"\x00" + repr(float(epsilon)).encode("ascii")
        self._key = hmac.digest(seed, message, "sha256")
        self._domain = tuple(domain)
        self._k = len(domain)
        self._boolean = self._domain == (False, True)
        self._positions = {value: i for i, value in enumerate(domain)}
        # Kept when the report's word is below the threshold: probability threshold/2^64,
        # p to within 2^-64. Otherwise the rest of the word picks one of the k−1 others,
        # off uniform by less than (k−1)/(2^64·(1−p)) < 10^-12 within the bounds of epsilon.
        self._threshold = math.floor(keep_probability(epsilon, self._k) * _SPAN)

    def value(self, index: int, value: Any) -> Any:
        """The value sent for report ``index`` (its place in the batch) whose value is ``value``:
        one report at a time, the slow and obvious way (the reference)."""
        block = hmac.digest(self._key, (index // _WORDS_PER_BLOCK).to_bytes(8, "big"), "sha256")
        at = 8 * (index % _WORDS_PER_BLOCK)
        return self._answer(int.from_bytes(block[at : at + 8], "big"), value)

    def column(self, values: Sequence[Any], missing: object) -> list[Any]:
        """The values sent for a whole column, cells equal to ``missing`` left as they are:
        the stream made in one go (what :meth:`value` gives, report by report)."""
        blocks = -(-len(values) // _WORDS_PER_BLOCK)
        key, digest = self._key, hmac.digest
        stream = b"".join([digest(key, i.to_bytes(8, "big"), "sha256") for i in range(blocks)])
        words = struct.unpack(f">{blocks * _WORDS_PER_BLOCK}Q", stream)
        # _answer again, inlined for speed: two spellings of one rule, which the tests compare.
        domain, k, threshold = self._domain, self._k, self._threshold
        boolean, positions = self._boolean, self._positions
        rest = _SPAN - threshold
        out: list[Any] = []
        append = out.append
        for cell, word in zip(values, words, strict=False):
            if cell is missing:
                append(cell)
                continue
            if boolean:
                position = int(cell) if type(cell) is bool else None
            else:
                position = positions.get(cell) if type(cell) is str else None
            if position is None:
                append(domain[(word * k) >> 64])
            elif word < threshold:
                append(domain[position])
            else:
                other = ((word - threshold) * (k - 1)) // rest
                append(domain[other + (other >= position)])
        return out

    def _answer(self, word: int, value: Any) -> Any:
        position = self._position(value)
        if position is None:
            return self._domain[(word * self._k) >> 64]
        threshold = self._threshold
        if word < threshold:
            return self._domain[position]
        other = ((word - threshold) * (self._k - 1)) // (_SPAN - threshold)
        return self._domain[other + (other >= position)]

    def _position(self, value: Any) -> int | None:
        # By type first: 0 == False and 1 == True as dict keys, but neither is a boolean.
        if self._boolean:
            return int(value) if type(value) is bool else None
        return self._positions.get(value) if type(value) is str else None


# -- the vendor's side -----------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """A vendor's estimate of a true count from the noisy ones (docs/noise.md)."""

    count: float  # unbiased, so it may fall below 0 or above the total: round and clamp to show it
    error: float  # its standard error, with the estimate (clamped to 0..total) for the true count


def estimate_counts(counts: Mapping[str, int], epsilon: float, values: Sequence[str]) -> dict[str, Estimate]:
    """The true count of each of a field's ``values`` (as aggregate keys: ``"false"``,
    ``"true"`` for a boolean), estimated from the noisy ``counts`` the vendor received: the
    reports' values counted, or a payload's aggregates for the field.

    t̂ = (n − N·q)/(p − q) for a value counted n times of N, with p and q as in
    :func:`keep_probability` and :func:`other_probability`. When the aggregates folded values
    into ``"(other)"``, the values not shown are estimated together, under ``"(other)"``:
    t̂ = (n − N·g·q)/(p − q) for the g values it holds.
    """
    k = len(values)
    p, q = keep_probability(epsilon, k), other_probability(epsilon, k)
    total = sum(counts.values())
    groups: dict[str, tuple[int, int]] = {}  # estimate's key: (noisy count, values it covers)
    for value in values:
        if value in counts:
            groups[value] = (counts[value], 1)
        elif _OTHER in counts:
            seen, size = groups.get(_OTHER, (counts[_OTHER], 0))
            groups[_OTHER] = (seen, size + 1)
        else:
            groups[value] = (0, 1)
    out = {}
    for key, (seen, size) in groups.items():
        count = (seen - total * size * q) / (p - q)
        error = _error(min(max(count, 0.0), total), total, size, p, q)
        out[key] = Estimate(count, error)
    return out


def standard_error(true_count: float, total: int, epsilon: float, k: int) -> float:
    """The exact standard error of :func:`estimate_counts`' estimate of one value whose true
    count among ``total`` reports is ``true_count``: sqrt(t·p(1−p) + (N−t)·q(1−q))/(p − q)."""
    return _error(true_count, total, 1, keep_probability(epsilon, k), other_probability(epsilon, k))


def _error(true_count: float, total: int, size: int, p: float, q: float) -> float:
    # The noisy count of a group of ``size`` values is a sum of independent draws: each of
    # its t reports lands in it with probability p + (size−1)·q, each other one with size·q.
    inside, outside = p + (size - 1) * q, size * q
    variance = true_count * inside * (1 - inside) + (total - true_count) * outside * (1 - outside)
    return math.sqrt(variance) / (p - q)
