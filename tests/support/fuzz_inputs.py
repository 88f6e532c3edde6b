"""What the fuzz tests share: hostile characters, junk values, and the tally of inputs tried.

Issue 7 asks for "junk inputs tried" as a figure. Each fuzz module counts the inputs it
sends into the code under test (hypothesis's shrinking included) and, at the end of the
module, prints the count and records it as ``fuzz.<module>.inputs`` for ``make bench``
(``tests.support.processes.record_figure``).
"""

from __future__ import annotations

import unicodedata

from hypothesis import strategies as st

from tests.support.processes import record_figure
from tray_app.core.errors import TrayError

# Characters that make text read differently from what it is, or break it into lines:
# C0/C1 controls, bidirectional embeddings, overrides, isolates and marks, invisible
# format characters, line and paragraph separators.
SPOOFING_CHARS = [
    *map(chr, range(0x00, 0x20)),
    "\x7f",
    *map(chr, range(0x80, 0xA0)),
    "\u00ad",  # soft hyphen
    "\u061c",  # Arabic letter mark
    "\u180e",  # Mongolian vowel separator
    "\u200b",  # zero width space
    "\u200e",
    "\u200f",
    "\u2028",  # line separator
    "\u2029",  # paragraph separator
    *map(chr, range(0x202A, 0x202F)),  # LRE RLE PDF LRO RLO
    "\u2060",  # word joiner
    *map(chr, range(0x2066, 0x206A)),  # LRI RLI FSI PDI
    "\ufeff",  # zero width no-break space (BOM)
    "\ufff9",  # interlinear annotation anchor
    "\U000e0001",  # language tag
    "\U000e0041",  # tag latin capital A
    "\ud800",  # lone surrogate
    "\ue000",  # private use
    "\U0010ffff",  # noncharacter
]

# ZWNJ and ZWJ are format characters too, but Persian, the Indic scripts and emoji
# need them to be spelt right; they are allowed in text shown to people.
_JOINERS = {"\u200c", "\u200d"}


def spoofing_char(ch: str, *, allow_newline: bool = False) -> bool:
    if ch == "\n" and allow_newline:
        return False
    return ch not in _JOINERS and unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def shown_safely(text: str, *, multiline: bool = False) -> bool:
    return not any(spoofing_char(ch, allow_newline=multiline) for ch in text)


def assert_clear_refusal(exc: BaseException) -> TrayError:
    """A refusal a person can read: a TrayError with a title and a message that is
    bounded and carries nothing that could spoof the text around it."""
    assert isinstance(exc, TrayError), f"{type(exc).__name__} escaped: {exc!r}"[:500]
    assert isinstance(exc.title, str) and exc.title.strip()
    assert isinstance(exc.message, str) and exc.message.strip()
    assert len(exc.message) <= 2000, f"a {len(exc.message)}-character message"
    assert shown_safely(exc.message, multiline=True), f"unsafe character in {exc.message!r}"[:500]
    return exc


# Text that hunts for trouble: any code point (lone surrogates included), biased
# towards the spoofing characters and the edges of ASCII.
nasty_text = st.text(
    alphabet=st.one_of(st.characters(), st.sampled_from(SPOOFING_CHARS)),
    max_size=80,
)

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([0, -1, 2**31, 2**63, -(2**63) - 1, 10**30, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    nasty_text,
)
# Any JSON-ish value (and then some: Python callers may hand in anything).
junk_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.one_of(nasty_text, st.sampled_from(["name", "type", "reports"])), inner, max_size=5),
    ),
    max_leaves=20,
)
# The same restricted to what json.dumps can write without NaN/Infinity.
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), nasty_text),
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(nasty_text, inner, max_size=5)),
    max_leaves=20,
)


class Tally:
    """How many junk inputs one fuzz module sent."""

    def __init__(self, module: str) -> None:
        self.module = module
        self.count = 0

    def add(self, n: int = 1) -> None:
        self.count += n

    def report(self) -> None:
        print(f"\n{self.module}: {self.count} junk inputs tried")
        record_figure(f"fuzz.{self.module}.inputs", self.count)
