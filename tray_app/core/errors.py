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
"""

from __future__ import annotations


class TrayError(Exception):
    """Base of every error meant for a person: ``title`` and ``message``."""

    title = "Telemetry Tray error"

    def __init__(self, message: str, *, title: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if title is not None:
            self.title = title

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
