"""Consent: app statuses, per-app policies, and where a closed batch goes.

:func:`route` is the whole rule, as one pure function, so it can be read and tested
in one place:

* an app the person has not allowed yet: the batch is **held** (never asked about,
  never sent) until they allow or block the app;
* *Pause all*, or the app's policy ``paused``: **held** without asking;
* a batch holding reports collected before the app was allowed: **pending**, always
  reviewed by the person, whatever the policy;
* otherwise the policy: ``ask`` → **pending**, ``approve`` → **approve** with the
  app's saved scope, ``discard`` → **discard**.
"""

from __future__ import annotations

from typing import Literal

AppStatus = Literal["awaiting_consent", "allowed", "blocked"]
Policy = Literal["ask", "approve", "discard", "paused"]
Route = Literal["held", "pending", "approve", "discard"]

APP_STATUSES: tuple[AppStatus, ...] = ("awaiting_consent", "allowed", "blocked")
POLICIES: tuple[Policy, ...] = ("ask", "approve", "discard", "paused")

# Batch statuses. "open" collects reports; "held" and "pending" wait for a decision.
OPEN, HELD, PENDING = "open", "held", "pending"
APPROVED, DISCARDED, EXPIRED = "approved", "discarded", "expired"
DELIVERED, FAILED = "delivered", "failed"
UNDECIDED = (OPEN, HELD, PENDING)
DECIDED = (APPROVED, DELIVERED, FAILED)


def route(status: str, policy: str, *, paused_all: bool, before_consent: bool) -> Route:
    if status == "blocked":
        return "discard"
    if status != "allowed" or paused_all or policy == "paused":
        return "held"
    if before_consent or policy == "ask":
        return "pending"
    if policy == "approve":
        return "approve"
    if policy == "discard":
        return "discard"
    return "pending"
