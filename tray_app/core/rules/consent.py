"""Consent: app statuses, per-app policies, batch statuses, and where a closed batch goes.

:func:`route` is the whole rule, as one pure function, so it can be read and tested
in one place:

* an app the person has not allowed yet: the batch is **held** (never asked about,
  never sent) until they allow or block the app;
* *Pause all*, or the app's policy ``paused``: **held** without asking;
* a batch holding reports collected before the app was allowed: **pending**, always
  reviewed by the person, whatever the policy;
* otherwise the policy: ``ask`` → **pending**, ``approve`` → **approve** with the
  app's saved scope, ``discard`` → **discard**.

The vocabularies are :class:`enum.StrEnum`: each member *is* its string, so what is
stored in the database and printed by ``--json`` is the same text as before.
"""

from __future__ import annotations

from enum import StrEnum


class AppStatus(StrEnum):
    """Where an app stands with the person (``apps.status``)."""

    AWAITING_CONSENT = "awaiting_consent"  # registered (or re-registered with new purposes); not answered yet
    ALLOWED = "allowed"  # the person allowed it: its batches are routed by its policy
    BLOCKED = "blocked"  # the person blocked it: its reports are refused, its batches discarded


class ConsentAnswer(StrEnum):
    """The person's answer to an app (``consent APP allow|block``)."""

    ALLOW = "allow"  # the app may send telemetry, batch by batch as its policy says
    BLOCK = "block"  # nothing more is accepted from it; what it left undelivered is discarded


class Policy(StrEnum):
    """An app's standing consent default (``apps.policy``)."""

    ASK = "ask"  # every closed batch waits for the person's review
    APPROVE = "approve"  # closed batches are approved with the app's saved scope
    DISCARD = "discard"  # closed batches are discarded
    PAUSED = "paused"  # closed batches are held without asking

    def describe(self) -> str:
        """The policy in a few words for a person ("Ask: every batch waits for you")."""
        return POLICY_WORDS[self][1]

    @property
    def label(self) -> str:
        """The policy's short name ("Approve automatically")."""
        return POLICY_WORDS[self][0]


# Each policy's short name and what it means, in words; every shell shows these.
POLICY_WORDS: dict[Policy, tuple[str, str]] = {
    Policy.ASK: ("Ask", "each batch waits for your review"),
    Policy.APPROVE: ("Approve automatically", "batches are approved with the saved scope"),
    Policy.DISCARD: ("Discard automatically", "batches are discarded"),
    Policy.PAUSED: ("Paused", "batches are held without asking"),
}


class BatchStatus(StrEnum):
    """Where a batch is (``batches.status``)."""

    OPEN = "open"  # its window is open: it collects reports
    HELD = "held"  # closed, waiting without asking (app not allowed yet, paused, Pause all)
    PENDING = "pending"  # closed, waiting for the person's review
    APPROVED = "approved"  # decided: its exact bytes are stored and are being delivered
    DISCARDED = "discarded"  # decided: its reports were deleted, nothing sent
    EXPIRED = "expired"  # not decided (or not delivered) within the retention period
    DELIVERED = "delivered"  # the vendor accepted its bytes
    FAILED = "failed"  # the vendor refused its bytes for good


class Route(StrEnum):
    """Where a closed batch goes (:func:`route`)."""

    HELD = "held"  # wait without asking
    PENDING = "pending"  # wait for the person's review
    APPROVE = "approve"  # approve with the app's saved scope
    DISCARD = "discard"  # discard it


APP_STATUSES: tuple[AppStatus, ...] = tuple(AppStatus)
POLICIES: tuple[Policy, ...] = tuple(Policy)

# Kept as names too, for the many places that list statuses.
OPEN, HELD, PENDING = BatchStatus.OPEN, BatchStatus.HELD, BatchStatus.PENDING
APPROVED, DISCARDED, EXPIRED = BatchStatus.APPROVED, BatchStatus.DISCARDED, BatchStatus.EXPIRED
DELIVERED, FAILED = BatchStatus.DELIVERED, BatchStatus.FAILED
# "open" collects reports; "held" and "pending" wait for a decision.
UNDECIDED: tuple[BatchStatus, ...] = (OPEN, HELD, PENDING)
DECIDED: tuple[BatchStatus, ...] = (APPROVED, DELIVERED, FAILED)


def route(status: AppStatus, policy: Policy, *, paused_all: bool, before_consent: bool) -> Route:
    if status == AppStatus.BLOCKED:
        return Route.DISCARD
    if status != AppStatus.ALLOWED or paused_all or policy == Policy.PAUSED:
        return Route.HELD
    if before_consent or policy == Policy.ASK:
        return Route.PENDING
    if policy == Policy.APPROVE:
        return Route.APPROVE
    return Route.DISCARD  # Policy.DISCARD, the one left
