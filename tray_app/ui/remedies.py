"""What the tray says to do about an error: the core's remedies in the UI's own words.

The core's messages name no shell; an error with a remedy (:class:`~tray_app.core.Remedy`)
is worded here with the windows and buttons where the person can do it.
"""

from __future__ import annotations

from ..core import Remedy, TrayError

__all__ = ["UI_REMEDIES", "told"]

UI_REMEDIES: dict[Remedy, str] = {
    Remedy.ALLOW_APP: "Allow it first in Settings.",
    Remedy.PERSON_ALLOWS: "Allow it again in Settings to accept its reports.",
    Remedy.ANSWER_WAITING_APPS: "Allow or block some first in Settings.",
    Remedy.CLOSE_BATCHES: "Wait for its window to close, or approve it as the review shows it.",
    Remedy.SET_CREDENTIALS: "Set it in Settings with Set credentials….",
    Remedy.SEE_APPS: "Settings lists the registered apps.",
    Remedy.SEE_PENDING: "Refresh the review to see the batches waiting.",
}


def told(exc: TrayError) -> str:
    """``exc``'s message as the tray shows it: its remedy in the tray's words."""
    return exc.message_with(UI_REMEDIES[exc.remedy]) if exc.remedy is not None else exc.message
