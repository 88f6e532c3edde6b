"""The review window's "what this batch says" beside the payload, and noise in its scope editor:
real widgets (offscreen), a real broker, real mouse clicks on the noise check box; what the
panel says follows the scope, and the bytes approved are the bytes the preview showed."""

from __future__ import annotations

from contextlib import closing
from typing import Any

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from tests.support.builders import allowed, tiny
from tests.support.fake_vendor import vendor
from tray_app.core import Broker, FindingKind
from tray_app.core.forwarder import Forwarder
from tray_app.core.platform.secrets import SecretStore
from tray_app.core.rules.canonical_json import canonical_bytes
from tray_app.ui.review_window import ReviewWindow, ScopeModel

from .test_ui_review import NoKeyring, _click_checkbox, _loaded, _pending, _row, _shown_payload, seen_text

FIELDS: list[dict[str, Any]] = [
    {"name": "event", "type": "enum", "values": ["open", "crop"], "description": "what happened", "required": True},
    {"name": "gpu", "type": "boolean", "description": "GPU in use", "noise": 1.0},
    {"name": "ts", "type": "timestamp", "description": "when", "coarsen": "hour"},
    {"name": "install_id", "type": "string", "description": "a random id", "sensitivity": "pseudonymous"},
]


def _reports(n: int = 40) -> list[dict[str, Any]]:
    return [
        {"event": ("open", "crop")[i % 2], "gpu": i % 4 != 0, "ts": f"2026-11-24T{9 + i % 2:02d}:10:00Z",
         "install_id": "a1b2c3"}
        for i in range(n)
    ]  # fmt: skip


def _finding_kinds(window: ReviewWindow) -> list[str]:
    return [label.property("finding") for label in window.disclosure.finding_labels]


def test_the_review_says_what_the_batch_reveals_and_follows_the_scope(qtbot: QtBot, broker: Broker) -> None:
    manifest = tiny(fields=FIELDS)
    allowed(broker, manifest)
    batch = _pending(broker, manifest, _reports())
    window = ReviewWindow(broker)
    qtbot.addWidget(window)
    window.resize(1366, 740)
    window.show()
    window.refresh()
    _loaded(qtbot, window, batch)
    panel = window.disclosure
    assert panel.isVisible()
    # The payload and the panel side by side.
    assert panel.geometry().left() > window.payload.geometry().left()
    assert FindingKind.ACTIVE_HOURS in _finding_kinds(window)
    gpu = next(bars for bars in panel.bars if bars.summary.name == "gpu")
    assert dict(gpu.rows) == {"true": 30, "false": 10}

    # Ticking the pseudonymous install id (a real click): the panel puts it first and says why.
    model, view = window.scope_model, window.scope_view
    before = window._shown_sha
    _click_checkbox(view, model.index(_row(model, "install_id"), ScopeModel.INCLUDE))
    qtbot.waitUntil(lambda: window._shown_sha != before and window.approve_button.isEnabled(), timeout=5000)
    assert _finding_kinds(window)[0] == FindingKind.IDENTIFYING
    assert panel.field_labels[0].text().startswith("install_id")

    # Coarsening ts to the day: the hours the person was active are no longer shown.
    model.setData(model.index(_row(model, "ts"), ScopeModel.COARSEN), "day", Qt.ItemDataRole.EditRole)
    qtbot.waitUntil(lambda: FindingKind.ACTIVE_HOURS not in _finding_kinds(window), timeout=5000)


def test_adding_noise_with_a_click_says_what_it_means_and_sends_what_was_shown(qtbot: QtBot, broker: Broker) -> None:
    with vendor([200]) as v:
        manifest = tiny(fields=FIELDS, endpoint=v.url)
        allowed(broker, manifest)
        batch = _pending(broker, manifest, _reports(200))
        window = ReviewWindow(broker)
        qtbot.addWidget(window)
        window.resize(1366, 740)
        window.show()
        window.refresh()
        _loaded(qtbot, window, batch)
        model, view = window.scope_model, window.scope_view
        noise = model.index(_row(model, "gpu"), ScopeModel.NOISE)
        assert "about 27% of these answers are replaced at random" in noise.data(Qt.ItemDataRole.ToolTipRole)
        # A field that offers no noise has no check box there.
        assert model.index(_row(model, "event"), ScopeModel.NOISE).data(Qt.ItemDataRole.CheckStateRole) is None
        plain = [r["gpu"] for r in _shown_payload(window)["reports"]]

        before = window._shown_sha
        _click_checkbox(view, noise)
        qtbot.waitUntil(lambda: window._shown_sha != before and window.approve_button.isEnabled(), timeout=5000)
        assert model.scope().noise == {"gpu": 1.0}
        shown = _shown_payload(window)
        assert shown["scope"]["noise"] == {"gpu": 1.0}
        noisy = [r["gpu"] for r in shown["reports"]]
        assert noisy != plain and set(noisy) <= {True, False}  # some answers replaced, none invented
        assert "with noise" in window.disclosure.field_labels[-1].text() or any(
            "with noise" in label.text() for label in window.disclosure.field_labels
        )
        # Off and on again: the same draw, so the same bytes.
        noisy_sha = window._shown_sha
        _click_checkbox(view, noise)
        qtbot.waitUntil(lambda: window._shown_sha == before and window.approve_button.isEnabled(), timeout=5000)
        _click_checkbox(view, noise)
        qtbot.waitUntil(lambda: window._shown_sha == noisy_sha and window.approve_button.isEnabled(), timeout=5000)

        # Unticking the field takes its noise with it; ticking it again starts without noise.
        _click_checkbox(view, model.index(_row(model, "gpu"), ScopeModel.INCLUDE))
        qtbot.waitUntil(lambda: "gpu" not in model.scope().fields and window.approve_button.isEnabled(), timeout=5000)
        assert model.scope().noise == {}
        assert not (model.flags(noise) & Qt.ItemFlag.ItemIsUserCheckable)
        _click_checkbox(view, model.index(_row(model, "gpu"), ScopeModel.INCLUDE))
        qtbot.waitUntil(lambda: "gpu" in model.scope().fields and window.approve_button.isEnabled(), timeout=5000)
        _click_checkbox(view, noise)
        qtbot.waitUntil(lambda: window._shown_sha == noisy_sha and window.approve_button.isEnabled(), timeout=5000)

        expected = canonical_bytes(_shown_payload(window))
        with qtbot.waitSignal(window.decided, timeout=5000):
            qtbot.mouseClick(window.approve_button, Qt.MouseButton.LeftButton)
        with closing(Forwarder(broker.deliveries, NoKeyring())) as forwarder:
            forwarder.deliver_due()
        assert v.bodies() == [expected]


def test_a_remembered_noise_is_kept_when_the_review_edits_the_scope(qtbot: QtBot, broker: Broker) -> None:
    manifest = tiny(fields=FIELDS)
    allowed(broker, manifest)
    first = _pending(broker, manifest, _reports(8))
    broker.approve(first, broker.edited_scope(first, noise={"gpu": 0.5}), remember=True)
    broker.set_policy(manifest.app_id, "ask")
    batch = _pending(broker, manifest, _reports(8))
    window = ReviewWindow(broker)
    qtbot.addWidget(window)
    window.show()
    window.refresh()
    _loaded(qtbot, window, batch)
    model = window.scope_model
    assert model.scope().noise == {"gpu": 0.5}
    assert model.index(_row(model, "gpu"), ScopeModel.NOISE).data() == "add noise (ε = 0.5)"
    # An edit elsewhere keeps it (the model builds the scope with its noise).
    model.setData(model.index(_row(model, "ts"), ScopeModel.COARSEN), "day", Qt.ItemDataRole.EditRole)
    assert model.scope().noise == {"gpu": 0.5}


class _NoSecretStored(SecretStore):
    """A keyring that works and holds nothing for this app (the tests' stand-in for an
    unlocked keyring without the vendor's secret; the real-keyring case is in test_ui_stuck)."""

    def available(self) -> bool:
        return True

    def has(self, app_id: str) -> bool:
        return False


def test_before_approving_the_review_says_the_vendors_secret_is_missing(qtbot: QtBot, broker: Broker) -> None:
    manifest = tiny(fields=FIELDS, auth="bearer")
    allowed(broker, manifest)
    batch = _pending(broker, manifest, _reports(4))
    window = ReviewWindow(broker, _NoSecretStored())
    qtbot.addWidget(window)
    window.show()
    window.refresh()
    _loaded(qtbot, window, batch)
    qtbot.waitUntil(window.credentials_line.isVisible, timeout=5000)
    text = window.credentials_line.text()
    assert "needs a secret" in text and "Set credentials" in text
    # A vendor that takes no secret: nothing is said.
    plain = tiny(fields=FIELDS, app_id="org.example.plain")
    allowed(broker, plain)
    other = _pending(broker, plain, _reports(4))
    window.refresh(select=f"batch:{other}")
    _loaded(qtbot, window, other)
    qtbot.wait(100)
    assert not window.credentials_line.isVisible()


def test_a_dap_batch_says_who_holds_the_two_halves_and_warns_when_the_vendor_holds_one(
    qtbot: QtBot, broker: Broker
) -> None:
    from tests.support.builders import MANIFESTS
    from tray_app.core.rules.manifest import load_manifest

    manifest = load_manifest(MANIFESTS / "photoedit-dap.toml")
    allowed(broker, manifest)
    batch = _pending(broker, manifest, [{"gpu_accelerated": True, "exports": 3, "export_format": "png"}] * 3)
    window = ReviewWindow(broker)
    qtbot.addWidget(window)
    window.show()
    window.refresh()
    _loaded(qtbot, window, batch)
    said = seen_text(window.summary)
    assert "one goes to Example Corp (dap.example.org), the other to ISRG Divvi Up (dap.divviup.org)" in said
    assert "only ever revealed summed with at least 99 others" in said
    # The leader is run by the vendor itself: said as a warning.
    assert "run by Example Corp, the vendor itself" in said
