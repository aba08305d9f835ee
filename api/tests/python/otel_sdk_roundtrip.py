#!/usr/bin/env python3
"""OpenTelemetry Python SDK -> Spanlake -> Tempo v1 JSON round trip.

Emits one trace with the real OpenTelemetry Python SDK through its OTLP
exporter (gRPC or HTTP/protobuf), records the very same spans with an
InMemorySpanExporter, fetches the trace back with
``GET http://$SPANLAKE_HTTP/api/traces/<hex id>`` and compares the answer
field by field against what the SDK recorded.

Exit status: 0 and a last stdout line ``OK <trace id hex> <n> spans`` on
success; 1 with a diff on stderr on any mismatch; 2 on usage errors.

Environment (each overridable by a flag):
  SPANLAKE_OTLP_GRPC  host:port of the OTLP gRPC receiver
  SPANLAKE_OTLP_HTTP  host:port of the OTLP HTTP receiver
  SPANLAKE_HTTP       host:port of the query API

The JSON checks follow proto3 canonical JSON as Tempo emits it: base64
ids, 64-bit integers as strings, enums by name, default values omitted
(an explicit default is accepted), attribute and span order free, spans
free to be regrouped under ResourceSpans/ScopeSpans.  Two quirks of the
Python SDK's OTLP encoder are mirrored in the expectation (see
``expected_model``): span/link ``flags`` carry only the
HAS_IS_REMOTE/IS_REMOTE bits (0x100/0x200), never the W3C sampled bit, and
a link's trace state is not exported at all.

The comparison helpers (``expected_model``, ``parse_tempo_json``,
``compare``) are importable; test_compare_selfcheck.py exercises them
without a server.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import json
import logging
import math
import os
import struct
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

# The servers under test are always local: keep any proxy settings of the
# environment away from the exporters (requests, grpc) and from urllib.
os.environ["no_proxy"] = os.environ["NO_PROXY"] = "*"
os.environ.setdefault("no_grpc_proxy", "*")

from opentelemetry import trace as trace_api  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import (  # noqa: E402
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)
from opentelemetry.sdk.trace.sampling import (  # noqa: E402
    Decision,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags, TraceState  # noqa: E402
from opentelemetry.trace.status import Status, StatusCode  # noqa: E402

SCHEMA_URL_RESOURCE = "https://opentelemetry.io/schemas/1.26.0"
SCHEMA_URL_SCOPE = "https://opentelemetry.io/schemas/1.24.0"
ROOT_TRACE_STATE = (("spanlake", "roundtrip"), ("vendor", "k1-v1"))

# --------------------------------------------------------------------------
# Emitting the trace
# --------------------------------------------------------------------------


class TraceStateSampler(Sampler):
    """Samples everything; gives root spans a non-empty W3C tracestate and
    lets children inherit their parent's, so ``traceState`` is exercised."""

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None,
                      trace_state=None):
        parent = trace_api.get_current_span(parent_context).get_span_context()
        if parent.is_valid:
            state = parent.trace_state
        else:
            state = TraceState(list(ROOT_TRACE_STATE))
        # The SDK takes the span's attributes from the sampling result.
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, state)

    def get_description(self) -> str:
        return "TraceStateSampler"


class RecordingExporter(SpanExporter):
    """Wraps the OTLP exporter and remembers every export result, so an
    export failure (which SimpleSpanProcessor only logs) fails the test."""

    def __init__(self, inner: SpanExporter):
        self.inner = inner
        self.results: list[SpanExportResult] = []
        self.errors: list[str] = []

    def export(self, spans):
        if self.errors or SpanExportResult.FAILURE in self.results:
            # Don't wait out the exporter's retries again for every span.
            self.results.append(SpanExportResult.FAILURE)
            return SpanExportResult.FAILURE
        try:
            result = self.inner.export(spans)
        except Exception as exc:  # noqa: BLE001 - reported, then fails the run
            self.errors.append(f"{type(exc).__name__}: {exc}")
            result = SpanExportResult.FAILURE
        self.results.append(result)
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def make_resource() -> Resource:
    # Resource.create adds telemetry.sdk.* and service.instance.id on top.
    return Resource.create(
        {
            "service.name": "spanlake-otel-roundtrip",
            "deployment.environment.name": "test",
            "res.str": "résumé ✓",
            "res.int": 42,
            "res.float": 2.5,
            "res.bool": True,
            "res.str_array": ["eu-west-1a", "eu-west-1b", "eu-west-1c"],
        },
        schema_url=SCHEMA_URL_RESOURCE,
    )


def make_provider(*exporters: SpanExporter) -> TracerProvider:
    # The deliberate overflows below would log a warning each.
    logging.getLogger("opentelemetry.attributes").setLevel(logging.ERROR)
    provider = TracerProvider(
        resource=make_resource(),
        sampler=TraceStateSampler(),
        # Explicit limits (so OTEL_* env vars can't change the data): two
        # links and six event attributes at most, so that one of the client
        # span's three links and one of its 'retry' event's seven attributes
        # are dropped and the dropped counts are non-zero.
        span_limits=SpanLimits(
            max_span_attributes=128,
            max_events=128,
            max_links=2,
            max_event_attributes=6,
            max_link_attributes=128,
            max_attribute_length=4096,
        ),
    )
    for exporter in exporters:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def root_attributes(run_id: str, nonfinite_floats: bool) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "test.run_id": run_id,
        # strings
        "http.request.method": "GET",
        "url.path": "/api/orders/1234",
        "str.unicode": 'ünïcødé ✓ 日本語 "quoted" \\ back\nnew line\ttab',
        "str.empty": "",
        # ints (64-bit: must not go through a JSON double)
        "http.response.status_code": 200,
        "int.neg": -42,
        "int.zero": 0,
        "int.max": 2**63 - 1,
        "int.min": -(2**63),
        "int.above_2_53": 2**53 + 1,
        # doubles
        "float.pi": 3.141592653589793,
        "float.tenth": 0.1,
        "float.neg": -1.25,
        "float.zero": 0.0,
        "float.neg_zero": -0.0,
        "float.integral": 5.0,
        "float.tiny": 5e-324,
        "float.huge": 1.7976931348623157e308,
        # bools
        "bool.true": True,
        "bool.false": False,
        # homogeneous arrays
        "list.str": ["alpha", "beta", ""],
        "list.int": [1, -2, 3_000_000_000, 0],
        "list.float": [0.5, -1.25, 1e10, 0.0],
        "list.bool": [True, False, True],
    }
    if nonfinite_floats:
        attrs["float.nan"] = float("nan")
        attrs["float.inf"] = float("inf")
        attrs["float.neg_inf"] = float("-inf")
    return attrs


def emit_trace(provider: TracerProvider, nonfinite_floats: bool = False) -> int:
    """Creates the test trace; returns its trace id."""
    run_id = uuid.uuid4().hex
    tracer = provider.get_tracer(
        "spanlake.tests.roundtrip",
        "0.3.1",
        schema_url=SCHEMA_URL_SCOPE,
        attributes={"scope.str": "yes", "scope.int": 7, "scope.bool": False},
    )

    # Span contexts to link to: one in another (remote) trace, with a trace
    # state (which the SDK won't export), and one more, to overflow max_links.
    foreign = SpanContext(
        trace_id=int.from_bytes(os.urandom(16), "big") | 1,
        span_id=int.from_bytes(os.urandom(8), "big") | 1,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("other", "ts")]),
    )
    foreign2 = SpanContext(
        trace_id=int.from_bytes(os.urandom(16), "big") | 1,
        span_id=int.from_bytes(os.urandom(8), "big") | 1,
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.DEFAULT),
    )

    with tracer.start_as_current_span(
        "GET /api/orders/{id}",
        kind=SpanKind.SERVER,
        attributes=root_attributes(run_id, nonfinite_floats),
    ) as root:
        root.add_event("request.received")  # an event without attributes

        with tracer.start_as_current_span(
            "POST payments",
            kind=SpanKind.CLIENT,
            attributes={"peer.service": "payments", "server.port": 8443, "retry": True},
            # max_links=2 and the SDK drops the OLDEST link on overflow: this
            # plain link is the one dropped (droppedLinksCount 1).
            links=[Link(foreign2)],
        ) as client:
            client.add_link(foreign, {"link.kind": "follows", "link.n": 1, "link.f": 0.25,
                                      "link.b": True, "link.list": ["x", "y"]})
            client.add_link(root.get_span_context(), {"link.kind": "parent-again"})
            client.add_event(
                "retry",
                attributes={
                    # max_event_attributes=6: the SDK drops the OLDEST one,
                    # this first attribute (droppedAttributesCount 1).
                    "retry.attempt": 2,
                    "retry.reason": "timeout",
                    "retry.backoff_s": 0.75,
                    "retry.final": False,
                    "retry.codes": [503, 504],
                    "retry.hosts": ["a", "b"],
                    "retry.dropped": "this seventh attribute is over the limit",
                },
            )
            try:
                raise TimeoutError("payment gateway did not answer in 2s")
            except TimeoutError as exc:
                client.record_exception(exc, attributes={"exception.escaped": False})
            client.set_status(Status(StatusCode.ERROR, "payment gateway timeout"))

            with tracer.start_as_current_span(
                "serialize payload",
                kind=SpanKind.INTERNAL,
                attributes={
                    # value types beyond the homogeneous primitives
                    "bytes": b"\x00\x01\xfe\xff spanlake",
                    "bytes.empty": b"",
                    "map": {"k.str": "v", "k.int": 1, "k.nested": {"deep": [1.5, "two", None]}},
                    "map.empty": {},
                    "list.mixed": ["a", 1, 2.5, True, None],
                    "list.nested": [[1, 2], ["x"], []],
                    "list.empty": [],
                    "none": None,
                },
            ) as grandchild:
                grandchild.set_status(Status(StatusCode.OK))

        with tracer.start_as_current_span(
            "publish order.created", kind=SpanKind.PRODUCER,
            attributes={"messaging.system": "kafka", "messaging.batch.message_count": 3},
        ):
            pass

    return root.get_span_context().trace_id


# --------------------------------------------------------------------------
# The canonical model both sides are reduced to
# --------------------------------------------------------------------------
#
# A value is a tagged tuple: ("string", s) ("int", i) ("double", f)
# ("bool", b) ("bytes", b) ("array", [values]) ("kvlist", {key: value})
# ("empty", None).  Attribute lists become {key: value} (order free).

SPAN_KINDS = [
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
]
STATUS_CODES = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"]
SDK_KIND = {
    SpanKind.INTERNAL: "SPAN_KIND_INTERNAL",
    SpanKind.SERVER: "SPAN_KIND_SERVER",
    SpanKind.CLIENT: "SPAN_KIND_CLIENT",
    SpanKind.PRODUCER: "SPAN_KIND_PRODUCER",
    SpanKind.CONSUMER: "SPAN_KIND_CONSUMER",
}
SDK_STATUS = {
    StatusCode.UNSET: "STATUS_CODE_UNSET",
    StatusCode.OK: "STATUS_CODE_OK",
    StatusCode.ERROR: "STATUS_CODE_ERROR",
}
FLAG_HAS_IS_REMOTE = 0x100
FLAG_IS_REMOTE = 0x200


def sdk_value(value: Any) -> tuple:
    """Python attribute value -> tagged value, as the OTLP encoder maps it."""
    if value is None:
        return ("empty", None)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, str):
        return ("string", value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, float):
        return ("double", value)
    if isinstance(value, bytes):
        return ("bytes", value)
    if isinstance(value, Sequence):
        return ("array", [sdk_value(v) for v in value])
    if isinstance(value, Mapping):
        return ("kvlist", {str(k): sdk_value(v) for k, v in value.items()})
    raise TypeError(f"unexpected attribute value {value!r}")


def sdk_attrs(attributes: Mapping[str, Any] | None) -> dict[str, tuple]:
    return {k: sdk_value(v) for k, v in (attributes or {}).items()}


def sdk_flags(context: SpanContext | None) -> int:
    # Mirrors the SDK encoder (_span_flags): the W3C trace flags are NOT
    # sent; only "has is_remote" and "is_remote" of the parent/linked context.
    flags = FLAG_HAS_IS_REMOTE
    if context is not None and context.is_remote:
        flags |= FLAG_IS_REMOTE
    return flags


def sdk_trace_state(state: TraceState | None) -> str:
    return ",".join(f"{k}={v}" for k, v in (state or {}).items())


def expected_model(spans: Sequence[ReadableSpan]) -> dict[str, dict]:
    """In-memory SDK spans -> {span id hex: canonical span}."""
    out: dict[str, dict] = {}
    for s in spans:
        ctx = s.get_span_context()
        scope = s.instrumentation_scope
        out[f"{ctx.span_id:016x}"] = {
            "resource": {
                "attributes": sdk_attrs(s.resource.attributes),
                "droppedAttributesCount": 0,
                "schemaUrl": s.resource.schema_url or "",
            },
            "scope": {
                "name": scope.name if scope else "",
                "version": (scope.version or "") if scope else "",
                "attributes": sdk_attrs(scope.attributes if scope else None),
                "droppedAttributesCount": 0,
                "schemaUrl": (scope.schema_url or "") if scope else "",
            },
            "traceId": f"{ctx.trace_id:032x}",
            "spanId": f"{ctx.span_id:016x}",
            "parentSpanId": f"{s.parent.span_id:016x}" if s.parent else "",
            "traceState": sdk_trace_state(ctx.trace_state),
            "flags": sdk_flags(s.parent),
            "name": s.name,
            "kind": SDK_KIND[s.kind],
            "startTimeUnixNano": s.start_time,
            "endTimeUnixNano": s.end_time,
            "attributes": sdk_attrs(s.attributes),
            "droppedAttributesCount": s.dropped_attributes,
            "events": [
                {
                    "timeUnixNano": e.timestamp,
                    "name": e.name,
                    "attributes": sdk_attrs(e.attributes),
                    "droppedAttributesCount": e.dropped_attributes,
                }
                for e in s.events
            ],
            "droppedEventsCount": s.dropped_events,
            "links": [
                {
                    "traceId": f"{link.context.trace_id:032x}",
                    "spanId": f"{link.context.span_id:016x}",
                    # The SDK's OTLP encoder does not export a link's trace
                    # state, so the server can't know it.
                    "traceState": "",
                    "attributes": sdk_attrs(link.attributes),
                    "droppedAttributesCount": link.dropped_attributes,
                    "flags": sdk_flags(link.context),
                }
                for link in s.links
            ],
            "droppedLinksCount": s.dropped_links,
            "status": {
                "code": SDK_STATUS[s.status.status_code],
                "message": s.status.description or "",
            },
        }
    return out


# --------------------------------------------------------------------------
# Parsing Tempo v1 JSON (strictly, collecting format errors)
# --------------------------------------------------------------------------

RESOURCE_SPANS_KEYS = {"resource", "scopeSpans", "schemaUrl"}
RESOURCE_KEYS = {"attributes", "droppedAttributesCount", "entityRefs"}
SCOPE_SPANS_KEYS = {"scope", "spans", "schemaUrl"}
SCOPE_KEYS = {"name", "version", "attributes", "droppedAttributesCount"}
SPAN_KEYS = {
    "traceId", "spanId", "traceState", "parentSpanId", "flags", "name", "kind",
    "startTimeUnixNano", "endTimeUnixNano", "attributes", "droppedAttributesCount",
    "events", "droppedEventsCount", "links", "droppedLinksCount", "status",
}
EVENT_KEYS = {"timeUnixNano", "name", "attributes", "droppedAttributesCount"}
LINK_KEYS = {"traceId", "spanId", "traceState", "attributes", "droppedAttributesCount", "flags"}
STATUS_KEYS = {"code", "message"}
ANY_VALUE_KEYS = {"stringValue", "boolValue", "intValue", "doubleValue", "arrayValue",
                  "kvlistValue", "bytesValue"}


class Parser:
    """Turns a Tempo v1 JSON document into the canonical model.  Format
    deviations from proto3 canonical JSON are collected in ``errors``; the
    parsed value is still used, so value mismatches get reported too."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def err(self, path: str, msg: str) -> None:
        self.errors.append(f"{path}: {msg}")

    # ---- structure helpers ----
    def obj(self, v: Any, path: str, keys: set[str]) -> dict:
        if v is None:
            return {}
        if not isinstance(v, dict):
            self.err(path, f"expected a JSON object, got {json.dumps(v)[:80]}")
            return {}
        for k in v:
            if k not in keys:
                self.err(path, f"unexpected field {k!r} (known: {', '.join(sorted(keys))})")
        return v

    def arr(self, v: Any, path: str) -> list:
        if v is None:
            return []
        if not isinstance(v, list):
            self.err(path, f"expected a JSON array, got {json.dumps(v)[:80]}")
            return []
        return v

    def string(self, v: Any, path: str) -> str:
        if v is None:
            return ""
        if not isinstance(v, str):
            self.err(path, f"expected a string, got {json.dumps(v)}")
            return str(v)
        return v

    def int64(self, v: Any, path: str, signed: bool = False) -> int:
        """(u)int64: proto3 JSON writes these as decimal strings."""
        if v is None:
            return 0
        if isinstance(v, bool):
            self.err(path, f"expected a 64-bit integer as a string, got {json.dumps(v)}")
            return int(v)
        if isinstance(v, int):
            self.err(path, f"64-bit integers must be JSON strings in proto3 JSON, got number {v}")
            return v
        if isinstance(v, float):
            self.err(path, f"64-bit integer as a JSON float {v!r} (precision lost?)")
            return int(v)
        if isinstance(v, str):
            try:
                n = int(v, 10)
            except ValueError:
                self.err(path, f"not a decimal integer: {v!r}")
                return 0
            lo, hi = (-(2**63), 2**63 - 1) if signed else (0, 2**64 - 1)
            if not lo <= n <= hi:
                self.err(path, f"{v} is out of range")
            return n
        self.err(path, f"expected a 64-bit integer string, got {json.dumps(v)}")
        return 0

    def uint32(self, v: Any, path: str) -> int:
        """uint32/fixed32: proto3 JSON writes these as numbers."""
        if v is None:
            return 0
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        if isinstance(v, str) and v.isdigit():
            self.err(path, f"32-bit integers are JSON numbers in proto3 JSON, got string {v!r}")
            return int(v)
        self.err(path, f"expected a 32-bit integer, got {json.dumps(v)}")
        return 0

    def enum(self, v: Any, path: str, names: list[str]) -> str:
        if v is None:
            return names[0]
        if isinstance(v, str):
            if v not in names:
                self.err(path, f"unknown enum name {v!r} (expected one of {names})")
            return v
        if isinstance(v, int) and not isinstance(v, bool):
            self.err(path, f"enums are written by name in proto3 JSON, got number {v}")
            return names[v] if 0 <= v < len(names) else f"<{v}>"
        self.err(path, f"bad enum value {json.dumps(v)}")
        return names[0]

    def bytes_(self, v: Any, path: str) -> bytes:
        if v is None:
            return b""
        if not isinstance(v, str):
            self.err(path, f"bytes must be a base64 string, got {json.dumps(v)}")
            return b""
        try:
            return base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError):
            try:
                out = base64.b64decode(v + "=" * (-len(v) % 4), altchars=b"-_", validate=True)
                self.err(path, f"{v!r} is not standard padded base64 (URL-safe/unpadded?)")
                return out
            except (binascii.Error, ValueError):
                self.err(path, f"{v!r} is not base64")
                return b""

    def id_(self, v: Any, path: str, size: int) -> str:
        """A trace/span id: base64 of the raw bytes -> lower hex ('' if absent)."""
        if v is None or v == "":
            return ""
        if isinstance(v, str) and len(v) == 2 * size and all(c in "0123456789abcdefABCDEF" for c in v):
            # 32 hex chars also happen to be valid base64 (of 24 bytes), so
            # check the hex reading first to give a clear message.
            self.err(path, f"{v!r} looks like hex; Tempo's JSON carries ids as base64 of the raw bytes")
            return v.lower()
        raw = self.bytes_(v, path)
        if len(raw) != size:
            self.err(path, f"{v!r} decodes to {len(raw)} bytes, expected {size}")
        return raw.hex()

    def double(self, v: Any, path: str) -> float:
        if isinstance(v, bool):
            self.err(path, f"expected a number, got {json.dumps(v)}")
            return float(v)
        if isinstance(v, (int, float)):
            return float(v)
        if isinstance(v, str):
            special = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
            if v in special:
                return special[v]
            self.err(path, f"doubles are JSON numbers (or NaN/Infinity/-Infinity strings), got {v!r}")
            try:
                return float(v)
            except ValueError:
                return math.nan
        self.err(path, f"expected a double, got {json.dumps(v)}")
        return math.nan

    # ---- OTLP messages ----
    def any_value(self, v: Any, path: str) -> tuple:
        if v is None:
            return ("empty", None)
        if not isinstance(v, dict):
            self.err(path, f"AnyValue must be a JSON object, got {json.dumps(v)[:80]}")
            return ("empty", None)
        keys = [k for k in v if k in ANY_VALUE_KEYS]
        for k in v:
            if k not in ANY_VALUE_KEYS:
                self.err(path, f"unexpected field {k!r} in AnyValue")
        if not keys:
            return ("empty", None)
        if len(keys) > 1:
            self.err(path, f"AnyValue has several values set: {keys}")
        k = keys[0]
        x = v[k]
        if k == "stringValue":
            return ("string", self.string(x, f"{path}.stringValue"))
        if k == "boolValue":
            if not isinstance(x, bool):
                self.err(f"{path}.boolValue", f"expected true/false, got {json.dumps(x)}")
            return ("bool", bool(x))
        if k == "intValue":
            return ("int", self.int64(x, f"{path}.intValue", signed=True))
        if k == "doubleValue":
            return ("double", self.double(x, f"{path}.doubleValue"))
        if k == "bytesValue":
            return ("bytes", self.bytes_(x, f"{path}.bytesValue"))
        if k == "arrayValue":
            a = self.obj(x, f"{path}.arrayValue", {"values"})
            return ("array", [self.any_value(e, f"{path}.arrayValue.values[{i}]")
                              for i, e in enumerate(self.arr(a.get("values"), f"{path}.arrayValue.values"))])
        # kvlistValue
        kv = self.obj(x, f"{path}.kvlistValue", {"values"})
        return ("kvlist", self.key_values(kv.get("values"), f"{path}.kvlistValue.values"))

    def key_values(self, v: Any, path: str) -> dict[str, tuple]:
        out: dict[str, tuple] = {}
        for i, kv in enumerate(self.arr(v, path)):
            kv = self.obj(kv, f"{path}[{i}]", {"key", "value"})
            key = self.string(kv.get("key"), f"{path}[{i}].key")
            if key in out:
                self.err(f"{path}[{i}]", f"duplicate key {key!r}")
            out[key] = self.any_value(kv.get("value"), f"{path}[{i}].value[{key!r}]")
        return out

    def span(self, s: Any, path: str, resource: dict, scope: dict) -> dict:
        s = self.obj(s, path, SPAN_KEYS)
        status = self.obj(s.get("status"), f"{path}.status", STATUS_KEYS)
        events = []
        for i, e in enumerate(self.arr(s.get("events"), f"{path}.events")):
            p = f"{path}.events[{i}]"
            e = self.obj(e, p, EVENT_KEYS)
            events.append({
                "timeUnixNano": self.int64(e.get("timeUnixNano"), f"{p}.timeUnixNano"),
                "name": self.string(e.get("name"), f"{p}.name"),
                "attributes": self.key_values(e.get("attributes"), f"{p}.attributes"),
                "droppedAttributesCount": self.uint32(e.get("droppedAttributesCount"), f"{p}.droppedAttributesCount"),
            })
        links = []
        for i, link in enumerate(self.arr(s.get("links"), f"{path}.links")):
            p = f"{path}.links[{i}]"
            link = self.obj(link, p, LINK_KEYS)
            links.append({
                "traceId": self.id_(link.get("traceId"), f"{p}.traceId", 16),
                "spanId": self.id_(link.get("spanId"), f"{p}.spanId", 8),
                "traceState": self.string(link.get("traceState"), f"{p}.traceState"),
                "attributes": self.key_values(link.get("attributes"), f"{p}.attributes"),
                "droppedAttributesCount": self.uint32(link.get("droppedAttributesCount"), f"{p}.droppedAttributesCount"),
                "flags": self.uint32(link.get("flags"), f"{p}.flags"),
            })
        return {
            "resource": resource,
            "scope": scope,
            "traceId": self.id_(s.get("traceId"), f"{path}.traceId", 16),
            "spanId": self.id_(s.get("spanId"), f"{path}.spanId", 8),
            "parentSpanId": self.id_(s.get("parentSpanId"), f"{path}.parentSpanId", 8),
            "traceState": self.string(s.get("traceState"), f"{path}.traceState"),
            "flags": self.uint32(s.get("flags"), f"{path}.flags"),
            "name": self.string(s.get("name"), f"{path}.name"),
            "kind": self.enum(s.get("kind"), f"{path}.kind", SPAN_KINDS),
            "startTimeUnixNano": self.int64(s.get("startTimeUnixNano"), f"{path}.startTimeUnixNano"),
            "endTimeUnixNano": self.int64(s.get("endTimeUnixNano"), f"{path}.endTimeUnixNano"),
            "attributes": self.key_values(s.get("attributes"), f"{path}.attributes"),
            "droppedAttributesCount": self.uint32(s.get("droppedAttributesCount"), f"{path}.droppedAttributesCount"),
            "events": events,
            "droppedEventsCount": self.uint32(s.get("droppedEventsCount"), f"{path}.droppedEventsCount"),
            "links": links,
            "droppedLinksCount": self.uint32(s.get("droppedLinksCount"), f"{path}.droppedLinksCount"),
            "status": {
                "code": self.enum(status.get("code"), f"{path}.status.code", STATUS_CODES),
                "message": self.string(status.get("message"), f"{path}.status.message"),
            },
        }


def parse_tempo_json(doc: Any) -> tuple[list[tuple[str, dict]], list[str]]:
    """Tempo v1 JSON -> ([(json path, canonical span)], format errors)."""
    p = Parser()
    spans: list[tuple[str, dict]] = []
    top = p.obj(doc, "$", {"batches"})
    if isinstance(doc, dict) and "batches" not in doc:
        p.err("$", "no 'batches' field")
    for bi, rs in enumerate(p.arr(top.get("batches"), "$.batches")):
        bpath = f"$.batches[{bi}]"
        rs = p.obj(rs, bpath, RESOURCE_SPANS_KEYS)
        res = p.obj(rs.get("resource"), f"{bpath}.resource", RESOURCE_KEYS)
        if res.get("entityRefs"):
            p.err(f"{bpath}.resource.entityRefs", "the SDK sent no entity refs")
        resource = {
            "attributes": p.key_values(res.get("attributes"), f"{bpath}.resource.attributes"),
            "droppedAttributesCount": p.uint32(res.get("droppedAttributesCount"),
                                               f"{bpath}.resource.droppedAttributesCount"),
            "schemaUrl": p.string(rs.get("schemaUrl"), f"{bpath}.schemaUrl"),
        }
        for si, ss in enumerate(p.arr(rs.get("scopeSpans"), f"{bpath}.scopeSpans")):
            spath = f"{bpath}.scopeSpans[{si}]"
            ss = p.obj(ss, spath, SCOPE_SPANS_KEYS)
            sc = p.obj(ss.get("scope"), f"{spath}.scope", SCOPE_KEYS)
            scope = {
                "name": p.string(sc.get("name"), f"{spath}.scope.name"),
                "version": p.string(sc.get("version"), f"{spath}.scope.version"),
                "attributes": p.key_values(sc.get("attributes"), f"{spath}.scope.attributes"),
                "droppedAttributesCount": p.uint32(sc.get("droppedAttributesCount"),
                                                   f"{spath}.scope.droppedAttributesCount"),
                "schemaUrl": p.string(ss.get("schemaUrl"), f"{spath}.schemaUrl"),
            }
            for i, s in enumerate(p.arr(ss.get("spans"), f"{spath}.spans")):
                path = f"{spath}.spans[{i}]"
                spans.append((path, p.span(s, path, resource, scope)))
    return spans, p.errors


# --------------------------------------------------------------------------
# Comparing
# --------------------------------------------------------------------------


def show(v: tuple) -> str:
    """A tagged value, readably, with its type."""
    tag, x = v
    if tag == "empty":
        return "empty (no value)"
    if tag == "double":
        return f"double {x!r}"
    if tag == "bytes":
        return f"bytes {x!r}"
    if tag == "array":
        return "array [" + ", ".join(show(e) for e in x) + "]"
    if tag == "kvlist":
        return "kvlist {" + ", ".join(f"{k!r}: {show(e)}" for k, e in sorted(x.items())) + "}"
    return f"{tag} {json.dumps(x, ensure_ascii=False)}"


def same_value(a: tuple, b: tuple) -> bool:
    if a[0] != b[0]:
        return False
    tag = a[0]
    if tag == "double":
        # bit-exact: tells -0.0 from 0.0, and NaN equals NaN
        return struct.pack("<d", a[1]) == struct.pack("<d", b[1]) or (math.isnan(a[1]) and math.isnan(b[1]))
    if tag == "array":
        return len(a[1]) == len(b[1]) and all(same_value(x, y) for x, y in zip(a[1], b[1]))
    if tag == "kvlist":
        return a[1].keys() == b[1].keys() and all(same_value(a[1][k], b[1][k]) for k in a[1])
    return a[1] == b[1]


def diff_attrs(where: str, exp: dict[str, tuple], act: dict[str, tuple], out: list[str]) -> None:
    for key in exp:
        if key not in act:
            out.append(f"{where}[{key!r}]: missing (expected {show(exp[key])})")
        elif not same_value(exp[key], act[key]):
            out.append(f"{where}[{key!r}]: expected {show(exp[key])}, got {show(act[key])}")
    for key in act:
        if key not in exp:
            out.append(f"{where}[{key!r}]: unexpected attribute {show(act[key])}")


def diff_fields(where: str, exp: dict, act: dict, out: list[str]) -> None:
    for field, e in exp.items():
        a = act.get(field)
        if field == "attributes":
            diff_attrs(f"{where}.attributes", e, a or {}, out)
        elif field in ("events", "links"):
            if len(e) != len(a):
                out.append(f"{where}.{field}: expected {len(e)}, got {len(a)}")
            for i, (ee, aa) in enumerate(zip(e, a)):
                label = ee.get("name", ee.get("spanId", ""))
                diff_fields(f"{where}.{field}[{i}] ({label})", ee, aa, out)
        elif isinstance(e, dict):
            diff_fields(f"{where}.{field}", e, a or {}, out)
        elif e != a:
            out.append(f"{where}.{field}: expected {json.dumps(e, ensure_ascii=False)}, "
                       f"got {json.dumps(a, ensure_ascii=False)}")


def compare(expected: dict[str, dict], doc: Any, trace_id_hex: str | None = None) -> list[str]:
    """Returns a list of human-readable differences (empty when equal)."""
    actual, format_errors = parse_tempo_json(doc)
    out = [f"format: {e}" for e in format_errors]
    seen: dict[str, str] = {}
    resource_scope_diffs: list[str] = []
    for path, span in actual:
        sid = span["spanId"]
        if trace_id_hex and span["traceId"] != trace_id_hex:
            out.append(f"{path}: span {sid} has trace id {span['traceId']}, requested {trace_id_hex}")
        if sid in seen:
            out.append(f"{path}: span {sid} appears twice (also at {seen[sid]})")
            continue
        seen[sid] = path
        exp = expected.get(sid)
        if exp is None:
            out.append(f"{path}: unexpected span {sid} {span['name']!r}")
            continue
        where = f"span {exp['name']!r} ({sid})"
        span_diffs: list[str] = []
        body_exp = {k: v for k, v in exp.items() if k not in ("resource", "scope")}
        diff_fields(where, body_exp, span, span_diffs)
        out.extend(span_diffs)
        # Resource/scope diffs are the same for every span of a batch:
        # report each once, under the JSON path of the batch / scopeSpans.
        bpath = path.split(".scopeSpans")[0]
        spath = path.split(".spans[")[0]
        for d in _diff(f"{bpath}.resource", exp["resource"], span["resource"]) + \
                _diff(f"{spath}.scope", exp["scope"], span["scope"]):
            if d not in resource_scope_diffs:
                resource_scope_diffs.append(d)
    out.extend(resource_scope_diffs)
    for sid, exp in expected.items():
        if sid not in seen:
            out.append(f"span {exp['name']!r} ({sid}): missing from the response")
    return out


def _diff(where: str, exp: dict, act: dict) -> list[str]:
    out: list[str] = []
    diff_fields(where, exp, act, out)
    return out


def count_fields(expected: dict[str, dict]) -> int:
    """How many leaf values the comparison covers (for the log)."""
    def n(x: Any) -> int:
        if isinstance(x, dict):
            return sum(n(v) for v in x.values())
        if isinstance(x, list):
            return sum(n(v) for v in x) or 1
        if isinstance(x, tuple):
            return n(x[1]) if x[0] in ("array", "kvlist") else 1
        return 1
    return n(expected)


# --------------------------------------------------------------------------
# Talking to the server
# --------------------------------------------------------------------------

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url: str, tenant: str | None, timeout: float = 10.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    if tenant:
        req.add_header("X-Scope-OrgID", tenant)
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError) as e:  # refused, reset, timed out
        return 0, str(getattr(e, "reason", e)).encode()


def fetch_trace(query_addr: str, trace_hex: str, tenant: str | None, wait_s: float) -> Any:
    url = f"http://{query_addr}/api/traces/{trace_hex}"
    deadline = time.monotonic() + wait_s
    while True:
        status, body = http_get(url, tenant)
        if status == 200:
            try:
                return json.loads(body)
            except ValueError as e:
                raise SystemExit(fail(f"GET {url}: 200 but the body is not JSON ({e}): {body[:300]!r}")) from None
        if status in (0, 404) and time.monotonic() < deadline:
            time.sleep(0.1)
            continue
        what = f"HTTP {status}" if status else "no connection"
        raise SystemExit(fail(f"GET {url} (tenant {tenant or 'default'}): {what}: {body[:500]!r}"))


def make_otlp_exporter(protocol: str, grpc_addr: str | None, http_addr: str | None,
                       tenant: str | None) -> SpanExporter:
    # gRPC metadata keys must be lower case; HTTP headers are case-free.
    headers = {"x-scope-orgid": tenant} if tenant else None
    if protocol == "grpc":
        if not grpc_addr:
            raise SystemExit(fail("no OTLP gRPC address: set SPANLAKE_OTLP_GRPC or --otlp-grpc", code=2))
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        return OTLPSpanExporter(endpoint=grpc_addr, insecure=True, headers=headers, timeout=10,
                                channel_options=(("grpc.enable_http_proxy", 0),))
    if not http_addr:
        raise SystemExit(fail("no OTLP HTTP address: set SPANLAKE_OTLP_HTTP or --otlp-http", code=2))
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter(endpoint=f"http://{http_addr}/v1/traces", headers=headers, timeout=10)


def fail(msg: str, code: int = 1) -> int:
    print(f"FAIL: {msg}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--protocol", choices=["grpc", "http"], required=True,
                    help="OTLP transport of the exporter")
    ap.add_argument("--tenant", help="send X-Scope-OrgID: TENANT on export and query")
    ap.add_argument("--expect-absent-tenant", metavar="OTHER",
                    help="after success, check the trace is a 404 for X-Scope-OrgID: OTHER")
    ap.add_argument("--otlp-grpc", default=os.environ.get("SPANLAKE_OTLP_GRPC"),
                    help="host:port (default $SPANLAKE_OTLP_GRPC)")
    ap.add_argument("--otlp-http", default=os.environ.get("SPANLAKE_OTLP_HTTP"),
                    help="host:port (default $SPANLAKE_OTLP_HTTP)")
    ap.add_argument("--query", default=os.environ.get("SPANLAKE_HTTP"),
                    help="host:port of the query API (default $SPANLAKE_HTTP)")
    ap.add_argument("--wait", type=float, default=5.0, help="seconds to retry a 404 (default 5)")
    ap.add_argument("--nonfinite-floats", action="store_true",
                    help="also send NaN/Infinity/-Infinity double attributes")
    ap.add_argument("--dump", action="store_true", help="print the server's JSON to stderr")
    args = ap.parse_args(argv)
    if not args.query:
        return fail("no query API address: set SPANLAKE_HTTP or --query", code=2)
    if args.expect_absent_tenant is not None and args.expect_absent_tenant == (args.tenant or "single-tenant"):
        return fail("--expect-absent-tenant must differ from the tenant written to", code=2)

    otlp = RecordingExporter(make_otlp_exporter(args.protocol, args.otlp_grpc, args.otlp_http, args.tenant))
    memory = InMemorySpanExporter()
    provider = make_provider(memory, otlp)
    trace_id = emit_trace(provider, nonfinite_floats=args.nonfinite_floats)
    provider.force_flush()
    spans = memory.get_finished_spans()
    trace_hex = f"{trace_id:032x}"
    provider.shutdown()

    if otlp.errors or any(r is not SpanExportResult.SUCCESS for r in otlp.results) or not otlp.results:
        return fail(f"OTLP {args.protocol} export failed: results={[r.name for r in otlp.results]} "
                    f"errors={otlp.errors} (see the exporter's log above)")

    doc = fetch_trace(args.query, trace_hex, args.tenant, args.wait)
    if args.dump:
        print(json.dumps(doc, indent=1, ensure_ascii=False), file=sys.stderr)
    expected = expected_model(spans)
    diffs = compare(expected, doc, trace_hex)
    if diffs:
        print(f"MISMATCH: trace {trace_hex} via OTLP {args.protocol} "
              f"(tenant {args.tenant or 'default'}): {len(diffs)} difference(s):", file=sys.stderr)
        for d in diffs:
            print(f"  - {d}", file=sys.stderr)
        return 1
    print(f"compared {count_fields(expected)} values of {len(expected)} spans: all equal", file=sys.stderr)

    if args.expect_absent_tenant is not None:
        url = f"http://{args.query}/api/traces/{trace_hex}"
        status, body = http_get(url, args.expect_absent_tenant)
        if status != 404:
            return fail(f"tenant isolation: GET {url} as {args.expect_absent_tenant!r} gave "
                        f"{f'HTTP {status}' if status else 'no connection'} "
                        f"(expected 404): {body[:300]!r}")
        print(f"tenant isolation: 404 for tenant {args.expect_absent_tenant!r}", file=sys.stderr)

    print(f"OK {trace_hex} {len(spans)} spans", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
