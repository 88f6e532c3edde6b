"""Characters that do not show as themselves, and text made safe to show a person.

One module for every rule about invisible or direction-changing characters: the
escaping of what is shown (:func:`plainly`, :func:`plain_text`) and the character
classes the manifest, the keyring and start at login refuse. Each class is a set of
Unicode general categories (``unicodedata.category``); they differ on purpose, as said
at each.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

# How much pretty-printed payload a window shows at once (a few hundred reports): more
# would take longer to lay out than rendering took; the rest on request.
PREVIEW_CHARS = 64 * 1024

# -- the classes ----------------------------------------------------------------------

# Controls (C0, C1 and DEL): the smallest class. A command line written for start at
# login and an app id named to the keyring refuse these alone: other characters are
# fine in a path or a name, and only a control can break the file or line they go in.
CONTROL: Final = frozenset({"Cc"})

# A vendor secret: controls, format characters (zero-width, bidi marks) and line and
# paragraph separators are refused as "a control character", so a secret pasted with a
# stray newline or BOM is told so in those words (any other non-ASCII is refused
# after it, as not sendable in an HTTP header).
SECRET_CONTROL: Final = frozenset({"Cc", "Cf", "Zl", "Zp"})

# Text a manifest shows a person (names, purposes, descriptions) may not hold characters
# that make it read differently from what it is: controls, bidirectional controls and
# other invisible format characters (Cf: zero-width space, BOM, tags), line and paragraph
# separators, surrogates, private use and unassigned code points. ZWNJ and ZWJ (also Cf)
# stay (see JOINERS): Persian, the Indic scripts and emoji need them to be spelt right.
# Spaces other than the plain one (Zs) are allowed: they read as spaces.
MANIFEST_UNSAFE: Final = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
JOINERS: Final = frozenset({"\u200c", "\u200d"})

# What display escapes (any report value or vendor answer, which nobody checked): the
# manifest's class, joiners included (in a value they can hide a difference), and also
# spaces other than the plain one (Zs: they look alike, so two values that differ would
# read the same). None of these prints as itself.
HIDDEN: Final = frozenset({"Cc", "Cf", "Zl", "Zp", "Zs", "Cs", "Co", "Cn"})
# Unicode's Default_Ignorable_Code_Point characters that are not already in those
# categories (variation selectors can carry bytes after any letter, the Hangul fillers
# and the grapheme joiner show as nothing), and the blank braille pattern: escaped too.
_IGNORABLE = re.compile(
    "[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u2800\u3164\ufe00-\ufe0f\uffa0"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
)


def shown_value(value: object, limit: int) -> str:
    """A value as an error message may quote it: its ``repr`` (which escapes controls, bidi
    and invisible characters, so the text is safe to show), cut to ``limit`` characters."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # an int over 4300 digits, a structure too deep
        text = f"a {type(value).__name__} too large to show"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def has_control(text: str) -> bool:
    """Whether ``text`` holds a control character (:data:`CONTROL`)."""
    return any(unicodedata.category(char) in CONTROL for char in text)


# -- showing text ---------------------------------------------------------------------


def plainly(text: str) -> str:
    """JSON text with every invisible or direction-changing character written as its
    ``\\uXXXX`` escape, for showing a person the payload.

    A report's strings may hold bidi overrides (U+202E), zero-width characters or line
    separators; shown as they are, they could make the preview read differently from the
    bytes it stands for. Escaped, the text is still JSON and decodes to the same values.
    Only DEL and non-ASCII characters can be such (JSON escapes the other ASCII controls).
    """
    if text.isascii() and "\x7f" not in text:
        return text
    return _NOT_PRINTABLE_ASCII.sub(_escape_if_hidden, text)


def plain_text(text: str) -> str:
    """Free text (a report value printed alone, a vendor's error answer) with every
    character that does not print as itself written as its ``\\uXXXX`` escape, for
    showing a person.

    The same rule as :func:`plainly`, and also for the ASCII controls (an escape sequence
    would drive the terminal; a carriage return could overwrite what was printed), which
    only JSON text has escaped already. A backslash stays as it is: this text is shown,
    never decoded again.
    """
    if text.isprintable() and text.isascii():
        return text
    return _NOT_PRINTABLE.sub(_escape_if_hidden, text)


def _escape_if_hidden(match: re.Match[str]) -> str:
    char = match.group()
    if unicodedata.category(char) in HIDDEN or _IGNORABLE.match(char):
        return "".join(f"\\u{unit:04x}" for unit in _utf16(char))
    return char


def _utf16(char: str) -> tuple[int, ...]:
    data = char.encode("utf-16-be", "surrogatepass")
    return tuple(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))


_NOT_PRINTABLE_ASCII = re.compile(r"[^\x00-\x7e]")
_NOT_PRINTABLE = re.compile(r"[^\x20-\x7e]")
