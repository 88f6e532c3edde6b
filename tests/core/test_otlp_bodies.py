"""OTLP log bodies that are arrays or key-value lists: their text is canonical JSON, made
the same way for either encoding, whatever characters the app sent."""

from __future__ import annotations

import json

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from tray_app.core.rules import otlp_wire as wire
from tray_app.core.rules.canonical_json import canonical_json


def _logs_with_body(body: dict[str, object]) -> dict[str, object]:
    return {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": body}]}]}]}


def test_a_nested_body_with_a_lone_surrogate_is_text_like_a_scalar_one() -> None:
    # JSON may escape a lone surrogate ("\ud800"); a string body keeps it as it came (the
    # report check refuses it later), and so does the text of an array body, rather than an
    # encoding error escaping the decoder.
    nested = json.dumps(_logs_with_body({"arrayValue": {"values": [{"stringValue": "\ud800"}]}})).encode()
    assert b"\\ud800" in nested  # escaped: the body itself is ASCII
    (record,) = wire.decode_logs(nested, wire.JSON_TYPE).records
    assert record.body == canonical_json(["\ud800"]) and record.dropped == ()
    scalar = json.dumps(_logs_with_body({"stringValue": "\ud800"})).encode()
    (record,) = wire.decode_logs(scalar, wire.JSON_TYPE).records
    assert record.body == "\ud800"


def test_both_encodings_give_a_nested_body_the_same_text() -> None:
    body = {
        "kvlistValue": {
            "values": [
                {"key": "z", "value": {"intValue": "7"}},
                {"key": "a", "value": {"arrayValue": {"values": [{"boolValue": True}, {"stringValue": "é"}]}}},
            ]
        }
    }
    request = _logs_with_body(body)
    (from_json,) = wire.decode_logs(json.dumps(request).encode(), wire.JSON_TYPE).records
    message = ExportLogsServiceRequest()
    json_format.ParseDict(request, message)
    (from_proto,) = wire.decode_logs(message.SerializeToString(), wire.PROTOBUF_TYPE).records
    assert from_json.body == from_proto.body == '{"a":[true,"é"],"z":7}'
