"""The one exception tree of Telemetry Tray.

Every error the core raises on purpose derives from :class:`TrayError` and carries a
``title`` (a few words) and a ``message`` (what went wrong and what to do), both fit
to show a person as they are. Shells map the branches to their own vocabulary
(exit codes, HTTP statuses, dialogs) and never need to parse the text::

    TrayError
    ├── InputError              the caller's input is wrong; nothing was changed
    │   ├── ManifestError       a manifest key is missing or invalid (names the key)
    │   ├── ReportError         a report does not match its manifest
    │   ├── MalformedError      a body is not the JSON it should be
    │   ├── TooLargeError       a body or a list is over its limit
    │   ├── ScopeError          a scope names unknown fields or impossible coarsening
    │   ├── NotFoundError       no such app or batch
    │   ├── ConflictError       the request contradicts the current state
    │   │   └── DigestMismatch  the batch no longer renders to the bytes that were seen
    │   ├── AuthError           a missing or wrong token
    │   ├── BlockedError        the person blocked this app
    │   └── TooManyWaiting      too many new apps already wait for the person's answer
    ├── StoreError              the database cannot be opened, migrated or written
    │   └── NewerDatabaseError  the database comes from a newer Telemetry Tray
    ├── CredentialsError        no usable OS keyring, or a vendor secret is missing or unreadable
    ├── AutostartError          start at login cannot be set up (says why)
    ├── AlreadyRunning          an instance already runs for this home (names its pid)
    ├── StopFailed              the running instance could not be stopped
    └── ClientError             the SDK could not register (tray_app.client)
        ├── NotRunning          no instance runs for this home, or it did not answer
        └── RegistrationRefused the instance answered the registration with an error

A message says what to do in words no shell owns ("Allow it first."); an error that has
a remedy a shell can name its own way (a CLI command, a window) carries it as
:attr:`TrayError.remedy` (with :attr:`TrayError.app_id` where it is about one app), and
the shell words it with :meth:`TrayError.message_with`.
"""

from __future__ import annotations

from enum import StrEnum


class Remedy(StrEnum):
    """What the person can do about an error, for each shell to say in its own words."""

    ALLOW_APP = "allow_app"  # allow the app (app_id) first
    PERSON_ALLOWS = "person_allows"  # (to the app) only the person can allow it again
    ANSWER_WAITING_APPS = "answer_waiting_apps"  # allow or block some of the apps awaiting consent
    CLOSE_BATCHES = "close_batches"  # close the collecting batch first, or approve the exact bytes shown
    SET_CREDENTIALS = "set_credentials"  # store the vendor's secret for the app (app_id, if known)
    SEE_APPS = "see_apps"  # look at the registered apps (the app named is not one)
    SEE_PENDING = "see_pending"  # look at the waiting batches (the batch named is not one)

    @property
    def neutral(self) -> str:
        """The remedy in words that name no shell ("" when the problem says enough)."""
        return _NEUTRAL[self]


_NEUTRAL: dict[Remedy, str] = {
    Remedy.ALLOW_APP: "Allow it first.",
    Remedy.PERSON_ALLOWS: "Only they can allow it again.",
    Remedy.ANSWER_WAITING_APPS: "Allow or block some first.",
    Remedy.CLOSE_BATCHES: "Close it first, or approve exactly the payload that was shown.",
    Remedy.SET_CREDENTIALS: "Set the vendor's secret for this app.",
    Remedy.SEE_APPS: "",
    Remedy.SEE_PENDING: "",
}


class TrayError(Exception):
    """Base of every error meant for a person: ``title`` and ``message``.

    ``message`` is ``problem`` followed by the remedy's neutral words; a shell with its
    own words for ``remedy`` shows :meth:`message_with` instead.
    """

    title = "Telemetry Tray error"

    def __init__(
        self, message: str, *, title: str | None = None, remedy: Remedy | None = None, app_id: str | None = None
    ) -> None:
        self.problem = message
        self.remedy = remedy
        self.app_id = app_id
        self.message = self.message_with(remedy.neutral if remedy is not None else "")
        super().__init__(self.message)
        if title is not None:
            self.title = title

    def message_with(self, remedy_words: str) -> str:
        """The problem, then ``remedy_words`` (a shell's own words for :attr:`remedy`)."""
        return f"{self.problem} {remedy_words}" if remedy_words else self.problem

    def __str__(self) -> str:
        return self.message


class InputError(TrayError):
    title = "Invalid input"


class ManifestError(InputError):
    """A manifest is refused. ``key`` is the dotted path of the offending key."""

    title = "Invalid manifest"

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"manifest key '{key}': {problem}" if key else f"manifest: {problem}")


class ReportError(InputError):
    title = "Invalid report"


class MalformedError(InputError):
    title = "Malformed input"


class TooLargeError(InputError):
    title = "Too large"


class ScopeError(InputError):
    title = "Invalid scope"


class NotFoundError(InputError):
    title = "Not found"


class ConflictError(InputError):
    title = "Not possible now"


class DigestMismatch(ConflictError):
    title = "Batch changed"


class AuthError(InputError):
    title = "Not authorised"


class BlockedError(InputError):
    title = "App blocked"


class TooManyWaiting(InputError):
    title = "Too many apps waiting"


class StoreError(TrayError):
    title = "Database problem"


class NewerDatabaseError(StoreError):
    title = "Database from a newer version"


class CredentialsError(TrayError):
    title = "Vendor credentials"


class AutostartError(TrayError):
    title = "Start at login"


class AlreadyRunning(TrayError):
    title = "Already running"

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        who = f"(pid {pid})" if pid else "(pid unknown)"
        super().__init__(f"Telemetry Tray is already running for this home {who}.")


class StopFailed(TrayError):
    title = "Could not stop Telemetry Tray"


class ClientError(TrayError):
    """Registration could not be done; ``message`` says why and what to do."""

    title = "Telemetry Tray client"


class NotRunning(ClientError):
    """No instance runs for this home (or it did not answer)."""

    title = "Telemetry Tray is not running"


class RegistrationRefused(ClientError):
    """The instance answered the registration with an error."""

    title = "Registration refused"

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        super().__init__(f"Telemetry Tray refused the registration ({status} {code}): {message}")
