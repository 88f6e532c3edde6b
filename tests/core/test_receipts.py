from __future__ import annotations

import dataclasses
import itertools
import sqlite3

from tests.support.builders import allowed, tiny
from tray_app.core import Broker
from tray_app.core.rules.receipts import GENESIS, Receipt, seal, verify_chain


def _chain(n: int) -> list[Receipt]:
    chain: list[Receipt] = []
    for i in range(n):
        chain.append(
            seal(chain[-1] if chain else None, f"2026-11-24T10:00:0{i}Z", f"b{i}", "app", "approved", {"i": i})
        )
    return chain


def test_a_fresh_chain_verifies() -> None:
    chain = _chain(5)
    assert chain[0].prev_hash == GENESIS
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(chain))
    check = verify_chain(chain)
    assert check.ok and check.count == 5 and check.head == chain[-1].hash


def test_an_edited_receipt_is_detected() -> None:
    chain = _chain(5)
    chain[2] = dataclasses.replace(chain[2], detail={"i": 99})
    check = verify_chain(chain)
    assert not check.ok and check.bad_seq == 3 and "changed" in check.problem


def test_a_deleted_or_reordered_receipt_is_detected() -> None:
    chain = _chain(5)
    assert verify_chain(chain[:2] + chain[3:]).bad_seq == 3
    assert not verify_chain([chain[1], chain[0], *chain[2:]]).ok


def test_a_rehashed_edit_still_breaks_the_link_to_the_next() -> None:
    chain = _chain(3)
    forged = seal(chain[0], chain[1].at, chain[1].batch_id, "app", "discarded", {})
    check = verify_chain([chain[0], forged, chain[2]])
    assert not check.ok and check.bad_seq == 3


def test_editing_the_database_is_detected(broker: Broker) -> None:
    m = tiny()
    allowed(broker, m)
    for _ in range(3):
        broker.ingest(m.app_id, [{"event": "e"}])
        (closed,) = broker.close_batches(force=True)
        broker.approve(closed.batch_id)
    assert broker.verify_history().ok and broker.verify_history().count == 3
    conn = sqlite3.connect(broker.store.path)
    conn.execute("UPDATE receipts SET detail = replace(detail, '\"reports\":1', '\"reports\":0') WHERE seq = 2")
    conn.commit()
    conn.close()
    check = broker.verify_history()
    assert not check.ok and check.bad_seq == 2
