"""The Qt-free core of Telemetry Tray: every rule lives here; shells only call it.

This module is the core's one face: the shells (``ui/``, ``ingest/``, ``cli.py``) import
from ``tray_app.core`` and nothing below it (``tests/promises/test_layers.py`` checks).
Inside, a folder is a layer:

* ``rules/``: pure functions and values (manifest, reports, scope, coarsening, payload,
  columns, preview text, receipts, retry rules, consent and statuses);
* ``storage/``: rows and files (the SQLite store, its migrations, the spool);
* ``platform/``: the operating system (paths and files, keyring, start at login, the
  running instance's lock and ``endpoint.json``);
* at the root, the services: :class:`Broker` (the facade, and the only place a
  transaction starts), the views it hands out, the journal, the deliveries ledger,
  :class:`Credentials` (vendor secrets with the broker, and ``connect``'s app tokens), the forwarder, the schedules
  and the demo; their threads are each a :class:`BackgroundLoop` (``loop.py``).

Errors are one tree (:mod:`tray_app.core.errors`), each with a ``title`` and ``message``
fit to show a person.
"""

from .broker import MAX_RETENTION_DAYS, Broker
from .credentials import Connection, Credentials, Removal
from .demo import DemoRemoval, DemoVendor, SampleStream, demo_app_ids, demo_apps, load_demo, remove_demo, resume_demo
from .errors import (
    AlreadyRunning,
    AuthError,
    AutostartError,
    BlockedError,
    ConflictError,
    CredentialsError,
    InputError,
    MalformedError,
    ManifestError,
    NotFoundError,
    Remedy,
    ScopeError,
    StopFailed,
    StoreError,
    TooLargeError,
    TooManyWaiting,
    TrayError,
)
from .forwarder import DeliveryLoop, Forwarder, timeout_from_env
from .loop import BackgroundLoop
from .platform.autostart import APP_ID, Autostart, autostart_for_platform
from .platform.endpoint_file import (
    Endpoint,
    InstanceLock,
    OtlpReceiver,
    remove_endpoint,
    remove_otlp_receiver,
    running_endpoint,
    running_otlp_receiver,
    stop_instance,
    wake_instance,
    write_endpoint,
    write_otlp_receiver,
)
from .platform.paths import Locations, number_from_env, port_from_env, repair_permissions
from .platform.secrets import SecretStore, needs_secret
from .rules.batch_summary import TOP_VALUES, Disclosure, FieldSummary, Finding, FindingKind, value_label
from .rules.bucket_words import bucket_words, level_words, other_words
from .rules.clock import from_iso, to_iso, utc_now
from .rules.consent import POLICIES, POLICY_WORDS, UNDECIDED, AppStatus, BatchStatus, ConsentAnswer, Policy
from .rules.delivery_words import (
    DeliveryAction,
    DeliveryStage,
    DeliveryWords,
    credentials_problem,
    delivery_words,
    error_words,
    status_words,
    wait_words,
)
from .rules.intake import MAX_BODY_BYTES, decode_reports, unique_keys
from .rules.manifest import (
    MAX_MANIFEST_BYTES,
    Auth,
    AuthKind,
    FieldSpec,
    Manifest,
    WireFormat,
    load_manifest,
    manifest_from_obj,
    parse_manifest,
)
from .rules.noise import MAX_EPSILON, MIN_EPSILON, keep_probability, noise_domain, noise_in_words
from .rules.otlp_wire import (
    OtlpDataPoint,
    OtlpLogRecord,
    decode_logs,
    decode_metrics,
    media_type,
    point_refusal,
    to_report,
)
from .rules.payload import Payload
from .rules.preview_text import PREVIEW_CHARS, plain_text, plainly
from .rules.receipts import (
    ACTIONS,
    BRIEF_DETAIL_KEYS,
    DETAIL_LABELS,
    GENESIS,
    Action,
    ChainCheck,
    ChainExport,
    Receipt,
    export_chain,
    verify_chain,
)
from .rules.retry import Outcome
from .rules.scope import MODES, Mode, Scope, scope_details, scope_fields_in_words, scope_in_words, scope_sentence
from .schedules import Housekeeper
from .storage.spool import Spool
from .views import AppInfo, BatchSummary, BatchView, IngestResult, OpenDelivery, Overview, Registration

__all__ = [
    "ACTIONS",
    "APP_ID",
    "BRIEF_DETAIL_KEYS",
    "DETAIL_LABELS",
    "GENESIS",
    "MAX_BODY_BYTES",
    "MAX_EPSILON",
    "MAX_MANIFEST_BYTES",
    "MAX_RETENTION_DAYS",
    "MIN_EPSILON",
    "MODES",
    "POLICIES",
    "POLICY_WORDS",
    "PREVIEW_CHARS",
    "TOP_VALUES",
    "UNDECIDED",
    "Action",
    "AlreadyRunning",
    "AppInfo",
    "AppStatus",
    "Auth",
    "AuthError",
    "AuthKind",
    "Autostart",
    "AutostartError",
    "BackgroundLoop",
    "BatchStatus",
    "BatchSummary",
    "BatchView",
    "BlockedError",
    "Broker",
    "ChainCheck",
    "ChainExport",
    "ConflictError",
    "Connection",
    "ConsentAnswer",
    "Credentials",
    "CredentialsError",
    "DeliveryAction",
    "DeliveryLoop",
    "DeliveryStage",
    "DeliveryWords",
    "DemoRemoval",
    "DemoVendor",
    "Disclosure",
    "Endpoint",
    "FieldSpec",
    "FieldSummary",
    "Finding",
    "FindingKind",
    "Forwarder",
    "Housekeeper",
    "IngestResult",
    "InputError",
    "InstanceLock",
    "Locations",
    "MalformedError",
    "Manifest",
    "ManifestError",
    "Mode",
    "NotFoundError",
    "OpenDelivery",
    "OtlpDataPoint",
    "OtlpLogRecord",
    "OtlpReceiver",
    "Outcome",
    "Overview",
    "Payload",
    "Policy",
    "Receipt",
    "Registration",
    "Remedy",
    "Removal",
    "SampleStream",
    "Scope",
    "ScopeError",
    "SecretStore",
    "Spool",
    "StopFailed",
    "StoreError",
    "TooLargeError",
    "TooManyWaiting",
    "TrayError",
    "WireFormat",
    "autostart_for_platform",
    "bucket_words",
    "credentials_problem",
    "decode_logs",
    "decode_metrics",
    "decode_reports",
    "delivery_words",
    "demo_app_ids",
    "demo_apps",
    "error_words",
    "export_chain",
    "from_iso",
    "keep_probability",
    "level_words",
    "load_demo",
    "load_manifest",
    "manifest_from_obj",
    "media_type",
    "needs_secret",
    "noise_domain",
    "noise_in_words",
    "number_from_env",
    "other_words",
    "parse_manifest",
    "plain_text",
    "plainly",
    "point_refusal",
    "port_from_env",
    "remove_demo",
    "remove_endpoint",
    "remove_otlp_receiver",
    "repair_permissions",
    "resume_demo",
    "running_endpoint",
    "running_otlp_receiver",
    "scope_details",
    "scope_fields_in_words",
    "scope_in_words",
    "scope_sentence",
    "status_words",
    "stop_instance",
    "timeout_from_env",
    "to_iso",
    "to_report",
    "unique_keys",
    "utc_now",
    "value_label",
    "verify_chain",
    "wait_words",
    "wake_instance",
    "write_endpoint",
    "write_otlp_receiver",
]
