#!/usr/bin/env python3
"""Self-check of otel_sdk_roundtrip.py without a Spanlake server.

1. The comparison: the SDK's own OTLP encoder plus protobuf's canonical
   JSON printer (MessageToDict) stand in for the server's Tempo v1 JSON.
   That document must pass, also regrouped, reordered and with explicit
   defaults; every single mutation of a field must fail, naming the field.
2. The whole script (export, fetch, compare, tenant check) against a small
   fake server in this process that speaks OTLP gRPC, OTLP HTTP and
   GET /api/traces/<id> correctly, and against one that loses data.

Run with the venv's python:  python api/tests/python/test_compare_selfcheck.py
(pytest also collects it).  Last line: 'N passed, N failed'.
"""
from __future__ import annotations

import base64
import contextlib
import copy
import io
import json
import os
import random
import sys
import threading
import time
import traceback
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import otel_sdk_roundtrip as rt  # noqa: E402
from google.protobuf.json_format import MessageToDict  # noqa: E402
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def make_spans(nonfinite: bool = False):
    memory = InMemorySpanExporter()
    provider = rt.make_provider(memory)
    trace_id = rt.emit_trace(provider, nonfinite_floats=nonfinite)
    provider.force_flush()
    spans = memory.get_finished_spans()
    provider.shutdown()
    return f"{trace_id:032x}", spans


def reference_doc(spans) -> dict:
    """What a correct server answers: the SDK's protobuf, printed as proto3
    canonical JSON, sent through a JSON text round trip."""
    batches = MessageToDict(encode_spans(spans))["resourceSpans"]
    return json.loads(json.dumps({"batches": batches}))


TRACE_HEX, SPANS = make_spans()
EXPECTED = rt.expected_model(SPANS)
DOC = reference_doc(SPANS)


def all_spans(doc):
    for rs in doc["batches"]:
        for ss in rs.get("scopeSpans", []):
            yield from ss.get("spans", [])


def span(doc, name):
    return next(s for s in all_spans(doc) if s["name"] == name)


def attr(attrs, key):
    return next(kv for kv in attrs if kv["key"] == key)["value"]


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


ROOT, CLIENT, GRAND, PRODUCER = "GET /api/orders/{id}", "POST payments", "serialize payload", "publish order.created"


def check_passes(doc, trace_hex=TRACE_HEX, expected=None):
    diffs = rt.compare(expected or EXPECTED, doc, trace_hex)
    assert not diffs, "expected no differences, got:\n  " + "\n  ".join(diffs)


def check_fails(mutate: Callable[[dict], Any], *needles: str):
    doc = copy.deepcopy(DOC)
    mutate(doc)
    diffs = rt.compare(EXPECTED, doc, TRACE_HEX)
    assert diffs, "mutation was not detected"
    text = "\n".join(diffs)
    for needle in needles:
        assert needle in text, f"diff does not mention {needle!r}:\n{text}"
    return diffs


# --------------------------------------------------------------------------
# 1. the comparison
# --------------------------------------------------------------------------


def test_scenario_shape():
    names = {s.name: s for s in SPANS}
    assert set(names) == {ROOT, CLIENT, GRAND, PRODUCER}
    assert names[CLIENT].parent.span_id == names[ROOT].context.span_id
    assert names[GRAND].parent.span_id == names[CLIENT].context.span_id
    assert names[CLIENT].dropped_links == 1 and len(names[CLIENT].links) == 2
    remote = names[CLIENT].links[0]
    assert remote.context.is_remote and remote.attributes["link.f"] == 0.25
    assert names[CLIENT].links[1].context.span_id == names[ROOT].context.span_id
    retry = next(e for e in names[CLIENT].events if e.name == "retry")
    assert retry.dropped_attributes == 1 and "retry.attempt" not in retry.attributes
    assert str(names[ROOT].context.trace_state.to_header()) == "spanlake=roundtrip,vendor=k1-v1"


def test_reference_document_passes():
    check_passes(DOC)


def test_nonfinite_floats_pass():
    trace_hex, spans = make_spans(nonfinite=True)
    doc = reference_doc(spans)
    vals = {kv["key"]: kv["value"] for kv in span(doc, ROOT)["attributes"]}
    assert vals["float.nan"] == {"doubleValue": "NaN"} and vals["float.neg_inf"] == {"doubleValue": "-Infinity"}
    check_passes(doc, trace_hex, rt.expected_model(spans))


def test_regrouped_and_reordered_passes():
    doc = copy.deepcopy(DOC)
    rs = doc["batches"][0]
    ss = rs["scopeSpans"][0]
    rnd = random.Random(7)
    batches = []
    for s in ss["spans"]:  # one ResourceSpans per span, like a store that regroups
        rnd.shuffle(s["attributes"])
        for e in s.get("events", []):
            rnd.shuffle(e.get("attributes", []))
        res = copy.deepcopy(rs["resource"])
        rnd.shuffle(res["attributes"])
        scope_spans = {k: v for k, v in ss.items() if k != "spans"}
        batches.append({**{k: v for k, v in rs.items() if k != "scopeSpans"}, "resource": res,
                        "scopeSpans": [{**copy.deepcopy(scope_spans), "spans": [s]}]})
    rnd.shuffle(batches)
    check_passes({"batches": batches})


def test_explicit_defaults_pass():
    doc = copy.deepcopy(DOC)
    for s in all_spans(doc):
        s.setdefault("parentSpanId", "")
        s.setdefault("droppedAttributesCount", 0)
        s.setdefault("droppedEventsCount", 0)
        s.setdefault("droppedLinksCount", 0)
        s.setdefault("events", [])
        s.setdefault("links", [])
        s["status"].setdefault("code", "STATUS_CODE_UNSET")
        s["status"].setdefault("message", "")
        for link in s["links"]:
            link.setdefault("traceState", "")
    doc["batches"][0]["resource"]["droppedAttributesCount"] = 0
    check_passes(doc)


def test_mutations_fail():
    trace_b = bytes.fromhex(TRACE_HEX)

    def set_attr(span_name, key, value):
        return lambda d: attr(span(d, span_name)["attributes"], key).clear() or \
            attr(span(d, span_name)["attributes"], key).update(value)

    def del_attr(span_name, key):
        def f(d):
            s = span(d, span_name)
            s["attributes"] = [kv for kv in s["attributes"] if kv["key"] != key]
        return f

    def set_field(span_name, field, value):
        return lambda d: span(d, span_name).__setitem__(field, value)

    def event(d, name="retry"):
        return next(e for e in span(d, CLIENT)["events"] if e["name"] == name)

    def res_attr(d, key):
        return attr(d["batches"][0]["resource"]["attributes"], key)

    def scope(d):
        return d["batches"][0]["scopeSpans"][0]

    cases: list[tuple[str, Callable[[dict], Any], tuple[str, ...]]] = [
        # span attributes, value and type
        ("int value", set_attr(ROOT, "int.max", {"intValue": str(2**63 - 2)}), ("'int.max'",)),
        ("int as JSON number", set_attr(ROOT, "int.neg", {"intValue": -42}), ("must be JSON strings", "int.neg")),
        ("int to string type", set_attr(ROOT, "http.response.status_code", {"stringValue": "200"}),
         ("expected int 200, got string",)),
        ("int to double type", set_attr(ROOT, "http.response.status_code", {"doubleValue": 200.0}),
         ("'http.response.status_code'",)),
        ("zero int lost its type", set_attr(ROOT, "int.zero", {}), ("'int.zero'", "empty")),
        ("false bool lost its type", set_attr(ROOT, "bool.false", {}), ("'bool.false'",)),
        ("empty string lost its type", set_attr(ROOT, "str.empty", {}), ("'str.empty'",)),
        ("double value", set_attr(ROOT, "float.tenth", {"doubleValue": 0.10000000000000002}), ("'float.tenth'",)),
        ("-0.0 became 0.0", set_attr(ROOT, "float.neg_zero", {"doubleValue": 0.0}), ("'float.neg_zero'",)),
        ("double as string", set_attr(ROOT, "float.pi", {"doubleValue": "3.141592653589793"}), ("float.pi",)),
        ("bool flipped", set_attr(ROOT, "bool.true", {"boolValue": False}), ("'bool.true'",)),
        ("string value", set_attr(ROOT, "str.unicode", {"stringValue": "unicode"}), ("'str.unicode'",)),
        ("str array reordered", set_attr(ROOT, "list.str", {"arrayValue": {"values": [
            {"stringValue": "beta"}, {"stringValue": "alpha"}, {"stringValue": ""}]}}), ("'list.str'",)),
        ("int array lost an element", lambda d: attr(span(d, ROOT)["attributes"], "list.int")["arrayValue"]["values"].pop(),
         ("'list.int'",)),
        ("float array element", lambda d: attr(span(d, ROOT)["attributes"], "list.float")["arrayValue"]["values"][0]
         .update({"doubleValue": 0.25}), ("'list.float'",)),
        ("bool array element type", lambda d: attr(span(d, ROOT)["attributes"], "list.bool")["arrayValue"]["values"]
         .__setitem__(1, {"stringValue": "false"}), ("'list.bool'",)),
        ("array flattened to string", set_attr(ROOT, "list.str", {"stringValue": '["alpha","beta",""]'}),
         ("'list.str'",)),
        ("attribute missing", del_attr(ROOT, "float.huge"), ("'float.huge'", "missing")),
        ("attribute added", lambda d: span(d, ROOT)["attributes"].append({"key": "x", "value": {"stringValue": "y"}}),
         ("unexpected attribute",)),
        ("duplicate attribute key", lambda d: span(d, ROOT)["attributes"].append(
            {"key": "int.neg", "value": {"intValue": "-42"}}), ("duplicate key",)),
        ("bytes value", set_attr(GRAND, "bytes", {"bytesValue": b64(b"other")}), ("'bytes'",)),
        ("bytes not base64", set_attr(GRAND, "bytes", {"bytesValue": "%%%"}), ("not base64",)),
        ("kvlist nested value", lambda d: attr(span(d, GRAND)["attributes"], "map")["kvlistValue"]["values"].pop(),
         ("'map'",)),
        ("empty value got a type", set_attr(GRAND, "none", {"stringValue": ""}), ("'none'",)),
        ("empty array lost", set_attr(GRAND, "list.empty", {}), ("'list.empty'",)),
        ("mixed array", lambda d: attr(span(d, GRAND)["attributes"], "list.mixed")["arrayValue"]["values"]
         .__setitem__(4, {"stringValue": "None"}), ("'list.mixed'",)),
        ("AnyValue with two members", set_attr(ROOT, "bool.true", {"boolValue": True, "stringValue": "true"}),
         ("several values",)),
        # span fields
        ("span name", set_field(GRAND, "name", "serialise payload"), (".name",)),
        ("kind", set_field(ROOT, "kind", "SPAN_KIND_CLIENT"), (".kind", "SPAN_KIND_SERVER")),
        ("kind as number", set_field(ROOT, "kind", 2), ("enums are written by name",)),
        ("kind missing", lambda d: span(d, PRODUCER).pop("kind"), (".kind",)),
        ("start time +1ns", lambda d: span(d, CLIENT).update(
            startTimeUnixNano=str(int(span(d, CLIENT)["startTimeUnixNano"]) + 1)), (".startTimeUnixNano",)),
        ("end time to micros", lambda d: span(d, CLIENT).update(
            endTimeUnixNano=str(int(span(d, CLIENT)["endTimeUnixNano"]) // 1000 * 1000 + 1)), (".endTimeUnixNano",)),
        ("time as JSON number", lambda d: span(d, CLIENT).update(
            startTimeUnixNano=float(span(d, CLIENT)["startTimeUnixNano"])), ("startTimeUnixNano",)),
        ("parent span id changed", set_field(GRAND, "parentSpanId", span(DOC, ROOT)["spanId"]), (".parentSpanId",)),
        ("parent span id dropped", lambda d: span(d, CLIENT).pop("parentSpanId"), (".parentSpanId",)),
        ("trace id as hex", set_field(ROOT, "traceId", TRACE_HEX), ("looks like hex",)),
        ("trace id other", set_field(ROOT, "traceId", b64(bytes(16))), ("trace id",)),
        ("span id urlsafe/unpadded", set_field(ROOT, "spanId", span(DOC, ROOT)["spanId"].rstrip("=")),
         ("not standard padded base64",)),
        ("trace state", set_field(ROOT, "traceState", "spanlake=roundtrip"), (".traceState",)),
        ("flags", set_field(ROOT, "flags", 1), (".flags",)),
        ("flags as string", set_field(ROOT, "flags", "256"), ("JSON numbers",)),
        ("dropped attributes count", set_field(ROOT, "droppedAttributesCount", 1), (".droppedAttributesCount",)),
        ("dropped links count", lambda d: span(d, CLIENT).pop("droppedLinksCount"), (".droppedLinksCount",)),
        # events
        ("event time", lambda d: event(d).update(timeUnixNano=str(int(event(d)["timeUnixNano"]) - 1)),
         (".events[0] (retry).timeUnixNano",)),
        ("event name", lambda d: event(d).update(name="retried"), (".events[0] (retry).name",)),
        ("event attribute", lambda d: attr(event(d)["attributes"], "retry.backoff_s").update(doubleValue=0.5),
         ("'retry.backoff_s'",)),
        ("event array attribute", lambda d: attr(event(d)["attributes"], "retry.codes")["arrayValue"]["values"]
         .reverse(), ("'retry.codes'",)),
        ("event dropped attributes", lambda d: event(d).pop("droppedAttributesCount"), ("droppedAttributesCount",)),
        ("event removed", lambda d: span(d, CLIENT)["events"].pop(), (".events: expected 2, got 1",)),
        ("events reordered", lambda d: span(d, CLIENT)["events"].reverse(), (".events[0]",)),
        ("attribute-less event lost", lambda d: span(d, ROOT).pop("events"), (".events",)),
        # links
        ("link trace id", lambda d: span(d, CLIENT)["links"][0].update(traceId=b64(trace_b)), (".links[0]", ".traceId")),
        ("link span id", lambda d: span(d, CLIENT)["links"][1].update(spanId=b64(bytes(8))), (".links[1]", ".spanId")),
        ("link attribute", lambda d: attr(span(d, CLIENT)["links"][0]["attributes"], "link.f").update(doubleValue=0.5),
         ("'link.f'",)),
        ("link attribute lost", lambda d: span(d, CLIENT)["links"][1].pop("attributes"), ("'link.kind'",)),
        ("link flags", lambda d: span(d, CLIENT)["links"][0].update(flags=256), (".flags",)),
        ("link flags lost", lambda d: span(d, CLIENT)["links"][1].pop("flags"), (".flags",)),
        ("link trace state invented", lambda d: span(d, CLIENT)["links"][0].update(traceState="other=ts"),
         (".traceState",)),
        ("link removed", lambda d: span(d, CLIENT)["links"].pop(), (".links: expected 2, got 1",)),
        # status
        ("status code", lambda d: span(d, CLIENT)["status"].update(code="STATUS_CODE_OK"), (".status.code",)),
        ("status message", lambda d: span(d, CLIENT)["status"].update(message=""), (".status.message",)),
        ("status OK lost", lambda d: span(d, GRAND).update(status={}), (".status.code",)),
        # resource and scope
        ("resource attribute", lambda d: res_attr(d, "res.int").update(intValue="43"), ("resource.attributes['res.int']",)),
        ("resource array", lambda d: res_attr(d, "res.str_array")["arrayValue"]["values"].pop(),
         ("'res.str_array'",)),
        ("resource attribute lost", lambda d: d["batches"][0]["resource"]["attributes"].pop(), ("resource.attributes",)),
        ("resource schema url", lambda d: d["batches"][0].pop("schemaUrl"), (".schemaUrl",)),
        ("scope name", lambda d: scope(d)["scope"].update(name="x"), ("scope.name",)),
        ("scope version", lambda d: scope(d)["scope"].pop("version"), ("scope.version",)),
        ("scope attribute", lambda d: attr(scope(d)["scope"]["attributes"], "scope.bool").update(boolValue=True),
         ("'scope.bool'",)),
        ("scope schema url", lambda d: scope(d).update(schemaUrl="https://x"), (".schemaUrl",)),
        # spans as a whole, and structure
        ("span missing", lambda d: scope(d)["spans"].pop(), ("missing from the response",)),
        ("span duplicated", lambda d: scope(d)["spans"].append(copy.deepcopy(scope(d)["spans"][0])), ("appears twice",)),
        ("foreign span", lambda d: scope(d)["spans"].append({**copy.deepcopy(scope(d)["spans"][0]),
                                                             "spanId": b64(b"\x01" * 8)}), ("unexpected span",)),
        ("snake_case field", lambda d: d["batches"][0].__setitem__("scope_spans", d["batches"][0].pop("scopeSpans")),
         ("unexpected field 'scope_spans'",)),
        ("no batches", lambda d: d.__setitem__("data", d.pop("batches")), ("no 'batches' field",)),
    ]
    failures = []
    for label, mutate, needles in cases:
        try:
            check_fails(mutate, *needles)
        except AssertionError as e:
            failures.append(f"{label}: {e}")
    assert not failures, f"{len(failures)}/{len(cases)} mutations not reported as expected:\n" + "\n".join(failures)
    print(f"    ({len(cases)} mutations, each detected)")


def test_diff_output_is_readable():
    diffs = check_fails(lambda d: attr(span(d, ROOT)["attributes"], "http.response.status_code")
                        .update(intValue="201"), "'http.response.status_code'")
    assert diffs == [f"span '{ROOT}' ({span_hex(ROOT)}).attributes['http.response.status_code']: "
                     f"expected int 200, got int 201"], diffs


def span_hex(name):
    return next(s for s in SPANS if s.name == name).context.span_id.to_bytes(8, "big").hex()


# --------------------------------------------------------------------------
# 2. the whole script against a fake server
# --------------------------------------------------------------------------


class FakeSpanlake:
    """OTLP gRPC + OTLP HTTP + GET /api/traces/<id>, multi-tenant, in memory.
    ``corrupt`` may rewrite each stored span (to play a lossy server)."""

    def __init__(self, corrupt: Callable[[Any], None] | None = None):
        import grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as pb
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as pb_grpc

        self.pb = pb
        self.corrupt = corrupt
        self.store: dict[str, dict[str, list]] = {}  # tenant -> trace hex -> [ResourceSpans]
        self.lock = threading.Lock()
        fake = self

        class TraceService(pb_grpc.TraceServiceServicer):
            def Export(self, request, context):  # noqa: N802
                md = dict(context.invocation_metadata())
                fake.ingest(md.get("x-scope-orgid"), request)
                return pb.ExportTraceServiceResponse()

        self.grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        pb_grpc.add_TraceServiceServicer_to_server(TraceService(), self.grpc_server)
        grpc_port = self.grpc_server.add_insecure_port("127.0.0.1:0")
        self.grpc_server.start()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path != "/v1/traces" or self.headers.get("Content-Type") != "application/x-protobuf":
                    self.send_error(415 if self.path == "/v1/traces" else 404)
                    return
                fake.ingest(self.headers.get("X-Scope-OrgID"), pb.ExportTraceServiceRequest.FromString(body))
                out = pb.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def do_GET(self):  # noqa: N802
                prefix = "/api/traces/"
                tenant = self.headers.get("X-Scope-OrgID") or "single-tenant"
                with fake.lock:
                    batches = fake.store.get(tenant, {}).get(self.path[len(prefix):].lower())
                    doc = None if not self.path.startswith(prefix) or not batches else \
                        {"batches": [MessageToDict(rs) for rs in batches]}
                if doc is None:
                    self.send_error(404)
                    return
                out = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.http_server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.http_server.serve_forever, daemon=True).start()
        http_addr = f"127.0.0.1:{self.http_server.server_address[1]}"
        self.args = ["--otlp-grpc", f"127.0.0.1:{grpc_port}", "--otlp-http", http_addr, "--query", http_addr]

    def ingest(self, tenant, request):
        tenant = tenant or "single-tenant"
        with self.lock:
            for rs in request.resource_spans:
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        if self.corrupt:
                            self.corrupt(s)
                        single = type(rs)()
                        single.CopyFrom(rs)
                        del single.scope_spans[:]
                        one = single.scope_spans.add()
                        one.CopyFrom(ss)
                        del one.spans[:]
                        one.spans.add().CopyFrom(s)
                        self.store.setdefault(tenant, {}).setdefault(s.trace_id.hex(), []).append(single)

    def stop(self):
        self.http_server.shutdown()
        self.grpc_server.stop(0)


def run_main(args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = rt.main(args)
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()


def test_end_to_end_fake_server():
    fake = FakeSpanlake()
    try:
        for protocol in ("grpc", "http"):
            for extra in ([], ["--tenant", "team-a", "--expect-absent-tenant", "team-b"],
                          ["--expect-absent-tenant", "team-b"]):
                code, out, err = run_main(["--protocol", protocol, *fake.args, *extra])
                assert code == 0, f"{protocol} {extra}: exit {code}\n{out}\n{err}"
                last = out.strip().splitlines()[-1].split()
                assert last[0] == "OK" and len(last[1]) == 32 and last[2:] == ["4", "spans"], out
                tenant = extra[1] if extra and extra[0] == "--tenant" else "single-tenant"
                assert last[1] in fake.store[tenant], (tenant, fake.store.keys())
        # Writing as team-a, expecting team-a's data to be absent for team-a: refused up front.
        code, _, err = run_main(["--protocol", "http", *fake.args, "--tenant", "x", "--expect-absent-tenant", "x"])
        assert code == 2, err
    finally:
        fake.stop()


def test_end_to_end_fake_server_lossy():
    def lose_event_attributes(s):
        for e in s.events:
            del e.attributes[:]
    fake = FakeSpanlake(corrupt=lose_event_attributes)
    try:
        code, out, err = run_main(["--protocol", "grpc", *fake.args])
        assert code == 1 and "['retry.reason']: missing" in err and "OK" not in out, (code, out, err)
    finally:
        fake.stop()


def test_end_to_end_query_api_down():
    # Export works, the query API refuses connections: a clear failure after --wait.
    fake = FakeSpanlake()
    try:
        args = [a if a != fake.args[5] else "127.0.0.1:9" for a in fake.args]
        code, out, err = run_main(["--protocol", "grpc", *args, "--wait", "0.5"])
        assert code == 1 and "no connection" in err and "OK" not in out, (code, out, err)
    finally:
        fake.stop()


def test_end_to_end_no_server():
    # Nothing listens on port 9 of 127.0.0.1: export fails -> exit 1, quickly.
    code, out, err = run_main(["--protocol", "http", "--otlp-http", "127.0.0.1:9", "--query", "127.0.0.1:9"])
    assert code == 1 and "export failed" in err, (code, out, err)


# --------------------------------------------------------------------------

if __name__ == "__main__":
    tests = [(n, f) for n, f in sorted(globals().items(), key=lambda kv: 0) if n.startswith("test_") and callable(f)]
    passed = failed = 0
    for name, fn in tests:
        started = time.monotonic()
        try:
            fn()
            passed += 1
            print(f"PASS {name} ({time.monotonic() - started:.1f}s)")
        except Exception:  # noqa: BLE001
            failed += 1
            print(f"FAIL {name}")
            traceback.print_exc()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
