"""A keyring backend in a dict, to test our own SecretStore wrapper and what stands on it.

Detection never picks it (``viable = False``): a test hands it to ``SecretStore`` itself, or
names it by its dotted path (``tests.support.keyrings.MemoryKeyring``) in
PYTHON_KEYRING_BACKEND. The tests that need the real OS keyring use
``tests.support.keyring_session.real_keyring`` instead.
"""

from __future__ import annotations

from keyring import errors as kerrors
from keyring.backend import KeyringBackend


class MemoryKeyring(KeyringBackend):
    """A keyring in a dict; detection never picks it.

    ``items`` maps (service, username) to the passwords stored under it, first first (another
    tool can leave more than one); ``calls`` records each get, set and delete asked of it.
    """

    priority = 1.0
    viable = False

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], list[str]] = {}
        self.calls: list[str] = []

    def get_password(self, service: str, username: str) -> str | None:
        self.calls.append("get")
        found = self.items.get((service, username))
        return found[0] if found else None

    def set_password(self, service: str, username: str, password: str) -> None:
        self.calls.append("set")
        self.items[(service, username)] = [password]

    def delete_password(self, service: str, username: str) -> None:
        """Removes the first matching entry only, like the Secret Service backend."""
        self.calls.append("delete")
        found = self.items.get((service, username))
        if not found:
            raise kerrors.PasswordDeleteError("No such password!")
        found.pop(0)
        if not found:
            del self.items[(service, username)]
