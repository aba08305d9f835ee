#!/usr/bin/env python3
"""Legacy tracing clients -> Spanlake's Jaeger/Zipkin receivers -> Tempo v1 JSON.

One run: a real client library sends a multi-span trace (typed attributes,
an error span, an event/log, a link/reference where the protocol has them)
to one receiver; the trace is read back with
``GET http://$SPANLAKE_HTTP/api/traces/<hex id>`` and every translated field
is compared with what the client sent, translated the way the OpenTelemetry
Collector's Jaeger/Zipkin translators do (docs/ingest.md has the table).

Clients (``--client``):
  otel-jaeger-thrift-agent   opentelemetry-exporter-jaeger-thrift, agent UDP, compact (6831)
  otel-jaeger-thrift-binary  the same exporter's thrift Agent client over TBinaryProtocol, UDP (6832)
  otel-jaeger-thrift-http    opentelemetry-exporter-jaeger-thrift, collector HTTP (14268)
  otel-jaeger-grpc           opentelemetry-exporter-jaeger-proto-grpc (14250)
  jaeger-client              jaeger-client (OpenTracing), agent UDP, compact (6831)
  otel-zipkin-v2 / -v1       opentelemetry-exporter-zipkin-json, v2 or v1 JSON (9411)
  py-zipkin-v2-json / -v1-json / -v2-proto3   py_zipkin with that encoding (9411)

Exit status 0 with a last line ``OK <client> <trace id> <n> spans``; 1 with
the differences on stderr.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from typing import Any

os.environ["no_proxy"] = os.environ["NO_PROXY"] = "*"
os.environ.setdefault("no_grpc_proxy", "*")

SCOPE = ("spanlake.legacy", "0.3.1")

# --------------------------------------------------------------------------
# Reading the trace back
# --------------------------------------------------------------------------


def any_value(v: dict) -> Any:
    if "stringValue" in v:
        return v["stringValue"]
    if "boolValue" in v:
        return v["boolValue"]
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "bytesValue" in v:
        return base64.b64decode(v["bytesValue"])
    return v  # arrays/kvlists: compared as JSON


def attrs(items: list | None) -> dict:
    return {a["key"]: any_value(a.get("value", {})) for a in items or []}


def b64hex(s: str | None) -> str:
    return base64.b64decode(s).hex() if s else ""


def normalize(doc: dict) -> list[dict]:
    """Tempo v1 JSON -> one flat dict per span."""
    out = []
    for batch in doc.get("batches", []):
        resource = attrs(batch.get("resource", {}).get("attributes"))
        for ss in batch.get("scopeSpans", []):
            scope = ss.get("scope", {})
            for s in ss.get("spans", []):
                status = s.get("status", {})
                out.append({
                    "resource": resource,
                    "scope": (scope.get("name", ""), scope.get("version", "")),
                    "trace_id": b64hex(s["traceId"]),
                    "span_id": b64hex(s["spanId"]),
                    "parent": b64hex(s.get("parentSpanId")),
                    "name": s.get("name", ""),
                    "kind": s.get("kind", "SPAN_KIND_UNSPECIFIED"),
                    "start": int(s.get("startTimeUnixNano", 0)),
                    "end": int(s.get("endTimeUnixNano", 0)),
                    "status": (status.get("code", "STATUS_CODE_UNSET"), status.get("message", "")),
                    "attrs": attrs(s.get("attributes")),
                    "events": sorted(
                        (int(e.get("timeUnixNano", 0)), e.get("name", ""), json.dumps(attrs(e.get("attributes")), sort_keys=True, default=repr))
                        for e in s.get("events", [])
                    ),
                    "links": sorted(
                        (b64hex(l["traceId"]), b64hex(l["spanId"]), json.dumps(attrs(l.get("attributes")), sort_keys=True))
                        for l in s.get("links", [])
                    ),
                    "trace_state": s.get("traceState", ""),
                    "flags": int(s.get("flags", 0)),
                })
    return out


def fetch(http: str, trace_hex: str, want: int, timeout: float = 30.0) -> list[dict]:
    """Polls until the trace has `want` spans (UDP and batching are async)."""
    deadline = time.time() + timeout
    spans: list[dict] = []
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://{http}/api/traces/{trace_hex}", timeout=5) as r:
                spans = normalize(json.load(r))
        except urllib.error.HTTPError as e:
            if e.code != 404:
                raise
        if len(spans) >= want:
            return spans
        time.sleep(0.2)
    return spans


def compare(expected: list[dict], actual: list[dict]) -> list[str]:
    """Every expected field of every span, matched by (span id, kind)."""
    problems = []
    if len(actual) != len(expected):
        problems.append(f"{len(actual)} spans read back, {len(expected)} expected: {[s['name'] for s in actual]}")
    by_key = {(s["span_id"], s["kind"]): s for s in actual}
    for exp in expected:
        got = by_key.get((exp["span_id"], exp["kind"]))
        if got is None:
            problems.append(f"span {exp['name']} ({exp['span_id']}, {exp['kind']}) missing")
            continue
        for field, want in exp.items():
            if got.get(field) != want:
                problems.append(f"span {exp['name']}: {field}\n    want {want!r}\n    got  {got.get(field)!r}")
    return problems


# --------------------------------------------------------------------------
# OpenTelemetry SDK clients (Jaeger and Zipkin exporters of SDK 1.21)
# --------------------------------------------------------------------------


def otel_emit(exporter, service: str) -> tuple[list, int]:
    """Sends the reference trace through `exporter`; returns the SDK's spans
    (as recorded) and the trace id."""
    from opentelemetry import trace as trace_api
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags
    from opentelemetry.trace.status import Status, StatusCode

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service, "deployment.environment": "ci", "service.instance.id": "i-7"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer(*SCOPE)
    t0 = (int(time.time()) - 30) * 10**9  # whole microseconds: Jaeger and Zipkin carry µs
    ms = 10**6
    linked = SpanContext(trace_id=0x0AF7651916CD43DD8448EB211C80319C, span_id=0x00F067AA0BA902B7, is_remote=True, trace_flags=TraceFlags(1))
    root = tracer.start_span("GET /checkout", kind=SpanKind.SERVER, start_time=t0,
                             attributes={"http.method": "GET", "http.status_code": 200, "ratio": 0.25, "cached": False})
    ctx = trace_api.set_span_in_context(root)
    child = tracer.start_span("charge card", context=ctx, kind=SpanKind.CLIENT, start_time=t0 + 5 * ms,
                              attributes={"amount": 12.5, "attempts": 2, "retried": True, "card.brand": "visa"},
                              links=[Link(linked, {"link.reason": "batch"})])
    child.add_event("retry", {"attempt": 2, "reason": "timeout"}, timestamp=t0 + 10 * ms)
    child.set_status(Status(StatusCode.ERROR, "card declined"))
    child.end(end_time=t0 + 30 * ms)
    internal = tracer.start_span("compute total", context=ctx, kind=SpanKind.INTERNAL, start_time=t0 + 31 * ms,
                                 attributes={"items": 3})
    internal.end(end_time=t0 + 40 * ms)
    root.set_status(Status(StatusCode.OK))
    root.end(end_time=t0 + 50 * ms)
    provider.shutdown()
    return memory.get_finished_spans(), root.get_span_context().trace_id


def kind_name(kind) -> str:
    return "SPAN_KIND_" + kind.name


def otel_jaeger_expected(spans, grpc: bool) -> list[dict]:
    """The collector's Jaeger translation of what the OTel Jaeger exporters send."""
    from opentelemetry.trace.status import StatusCode

    out = []
    for s in spans:
        res = dict(s.resource.attributes)
        # Both exporters copy the resource into every span's tags; the gRPC
        # one also sends it as the span's process tags.
        resource = dict(res) if grpc else {"service.name": res["service.name"]}
        a = {**dict(s.attributes), **res}
        status = ("STATUS_CODE_UNSET", "")
        if s.status.status_code is StatusCode.ERROR:
            status = ("STATUS_CODE_ERROR", s.status.description or "")
        elif s.status.status_code is StatusCode.OK:
            status = ("STATUS_CODE_OK", "")
        out.append({
            "resource": resource,
            "scope": SCOPE,
            "trace_id": f"{s.context.trace_id:032x}",
            "span_id": f"{s.context.span_id:016x}",
            "parent": f"{s.parent.span_id:016x}" if s.parent else "",
            "name": s.name,
            "kind": kind_name(s.kind),
            "start": s.start_time,
            "end": s.end_time,
            "status": status,
            "attrs": a,
            # Jaeger logs: the exporter names the event in a "message"
            # field; the collector takes the name from "event" only.
            "events": sorted((e.timestamp, "", json.dumps({**dict(e.attributes), "message": e.name}, sort_keys=True)) for e in s.events),
            # References carry no attributes: the link's are lost, and the
            # collector marks the reference type.
            "links": sorted((f"{l.context.trace_id:032x}", f"{l.context.span_id:016x}", json.dumps({"opentracing.ref_type": "follows_from"})) for l in s.links),
            "trace_state": "",
            "flags": 1,
        })
    return out


def zipkin_text(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def otel_zipkin_expected(spans, v1: bool, local_ip: str, local_port: int) -> list[dict]:
    """The collector's Zipkin translation of what the OTel Zipkin exporter sends."""
    from opentelemetry.trace import SpanKind
    from opentelemetry.trace.status import StatusCode

    out = []
    for s in spans:
        res = {k: zipkin_text(v) for k, v in s.resource.attributes.items()}
        a = {k: zipkin_text(v) for k, v in s.attributes.items()}
        status = ("STATUS_CODE_UNSET", "")
        if s.status.status_code is StatusCode.ERROR:
            # "error" carries the description and stays a tag; the exporter
            # sends no otel.status_description.
            status = ("STATUS_CODE_ERROR", "")
            a["error"] = s.status.description or ""
        elif s.status.status_code is StatusCode.OK:
            status = ("STATUS_CODE_OK", "")
        a["net.host.ip"] = local_ip
        a["net.host.port"] = local_port
        # v2 has kinds (internal spans are sent without); v1 JSON from this
        # exporter has no core annotations, so no kind at all.
        kind = "SPAN_KIND_UNSPECIFIED" if v1 or s.kind is SpanKind.INTERNAL else kind_name(s.kind)
        out.append({
            "resource": res,
            "scope": SCOPE,
            "trace_id": f"{s.context.trace_id:032x}",
            "span_id": f"{s.context.span_id:016x}",
            "parent": f"{s.parent.span_id:016x}" if s.parent else "",
            "name": s.name,
            "kind": kind,
            "start": s.start_time,
            "end": s.end_time,
            "status": status,
            "attrs": a,
            # The annotation value is the exporter's JSON; the collector
            # takes it as the event name.
            "events": sorted((e.timestamp, json.dumps({e.name: dict(e.attributes)}, sort_keys=True), "{}") for e in s.events),
            "links": [],
            "trace_state": "",
            "flags": 0,
        })
    return out


def run_otel(args) -> tuple[str, list[dict]]:
    service = f"legacy-{args.client}"
    if args.client.startswith("otel-jaeger-thrift"):
        from opentelemetry.exporter.jaeger.thrift import JaegerExporter

        if args.client == "otel-jaeger-thrift-http":
            exporter = JaegerExporter(collector_endpoint=f"http://{args.jaeger_thrift_http}/api/traces?format=jaeger.thrift")
        else:
            addr = args.jaeger_compact if args.client == "otel-jaeger-thrift-agent" else args.jaeger_binary
            host, port = addr.rsplit(":", 1)
            exporter = JaegerExporter(agent_host_name=host, agent_port=int(port))
            if args.client == "otel-jaeger-thrift-binary":
                # The exporter's thrift Agent client, over TBinaryProtocol
                # (what Jaeger agents take on 6832).
                from opentelemetry.exporter.jaeger.thrift.gen.agent import Agent
                from thrift.protocol import TBinaryProtocol

                udp = exporter._agent_client  # pylint: disable=protected-access
                udp.client = Agent.Client(iprot=TBinaryProtocol.TBinaryProtocol(trans=udp.buffer))
        spans, trace_id = otel_emit(exporter, service)
        return f"{trace_id:032x}", otel_jaeger_expected(spans, grpc=False)
    if args.client == "otel-jaeger-grpc":
        from opentelemetry.exporter.jaeger.proto.grpc import JaegerExporter

        exporter = JaegerExporter(collector_endpoint=args.jaeger_grpc, insecure=True)
        spans, trace_id = otel_emit(exporter, service)
        expected = otel_jaeger_expected(spans, grpc=True)
        # This exporter turns nanoseconds into protobuf Timestamps through a
        # float: what it sends is off by up to a microsecond. Expect that.
        from opentelemetry.exporter.jaeger.proto.grpc.translate import _proto_timestamp_from_epoch_nanos

        def sent(ns: int) -> int:
            ts = _proto_timestamp_from_epoch_nanos(ns)
            return ts.seconds * 10**9 + ts.nanos

        for e in expected:
            e["start"], e["end"] = sent(e["start"]), sent(e["end"])
            e["events"] = [(sent(t), n, a) for t, n, a in e["events"]]
        return f"{trace_id:032x}", expected
    if args.client in ("otel-zipkin-v2", "otel-zipkin-v1"):
        from opentelemetry.exporter.zipkin.json import ZipkinExporter
        from opentelemetry.exporter.zipkin.encoder import Protocol

        v1 = args.client.endswith("v1")
        version = Protocol.V1 if v1 else Protocol.V2
        # (max_tag_value_length: the v1 encoder of this release fails without one.)
        exporter = ZipkinExporter(version=version, endpoint=f"http://{args.zipkin}/api/{'v1' if v1 else 'v2'}/spans",
                                  local_node_ipv4="10.1.2.3", local_node_port=8080, max_tag_value_length=256)
        spans, trace_id = otel_emit(exporter, service)
        return f"{trace_id:032x}", otel_zipkin_expected(spans, v1, "10.1.2.3", 8080)
    raise SystemExit(f"unknown client {args.client}")


# --------------------------------------------------------------------------
# jaeger-client (OpenTracing)
# --------------------------------------------------------------------------


def run_jaeger_client(args) -> tuple[str, list[dict]]:
    import opentracing
    from jaeger_client import Config

    host, port = args.jaeger_compact.rsplit(":", 1)
    service = "legacy-jaeger-client"
    config = Config(
        config={
            "sampler": {"type": "const", "param": 1},
            "local_agent": {"reporting_host": host, "reporting_port": int(port)},
            "reporter_flush_interval": 0.1,
            "logging": False,
            "tags": {"deploy.stage": "ci", "build.number": 42, "canary": True, "weight": 0.5},
        },
        service_name=service,
        validate=True,
    )
    tracer = config.new_tracer()
    t0 = float(int(time.time()) - 30)  # offsets in 1/8 s: exact floats, whole µs
    root = tracer.start_span("GET /orders", start_time=t0,
                             tags={"span.kind": "server", "http.method": "GET", "http.status_code": 200, "sampled.ratio": 0.125, "cache.hit": False})
    other = tracer.start_span("enqueue", child_of=root, start_time=t0 + 0.125, tags={"span.kind": "producer"})
    other.finish(finish_time=t0 + 0.25)
    child = tracer.start_span("SELECT orders", child_of=root, references=[opentracing.follows_from(other.context)],
                              start_time=t0 + 0.25, tags={"span.kind": "client", "db.rows": 7, "db.system": "postgresql"})
    child.set_tag("error", True)
    child.log_kv({"event": "timeout", "attempt": 3, "backoff.s": 0.5}, timestamp=t0 + 0.375)
    child.finish(finish_time=t0 + 0.5)
    root.finish(finish_time=t0 + 0.625)
    time.sleep(0.5)
    tracer.close()
    time.sleep(0.5)

    process = {"service.name": service}
    process.update(tracer.tags)
    us = 1_000_000

    def ns(t: float) -> int:
        return int(round(t * us)) * 1000

    trace_hex = f"{root.context.trace_id:032x}"  # 64-bit id: padded with zeros in front

    def span(s, name, kind, start, end, attrs, **extra) -> dict:
        d = {
            "resource": process, "scope": ("", ""), "trace_id": trace_hex,
            "span_id": f"{s.context.span_id:016x}", "name": name, "kind": kind,
            "start": ns(start), "end": ns(end), "attrs": attrs, "trace_state": "", "flags": 1,
        }
        d.update(extra)
        return d

    expected = [
        # (jaeger-client tags the root span with its sampler.)
        span(root, "GET /orders", "SPAN_KIND_SERVER", t0, t0 + 0.625,
             {"http.method": "GET", "http.status_code": 200, "sampled.ratio": 0.125, "cache.hit": False,
              "sampler.type": "const", "sampler.param": True},
             parent="", status=("STATUS_CODE_UNSET", ""), events=[], links=[]),
        span(other, "enqueue", "SPAN_KIND_PRODUCER", t0 + 0.125, t0 + 0.25, {}, parent=f"{root.context.span_id:016x}",
             status=("STATUS_CODE_UNSET", ""), events=[], links=[]),
        span(child, "SELECT orders", "SPAN_KIND_CLIENT", t0 + 0.25, t0 + 0.5, {"db.rows": 7, "db.system": "postgresql"},
             parent=f"{root.context.span_id:016x}", status=("STATUS_CODE_ERROR", ""),
             events=[(ns(t0 + 0.375), "timeout", json.dumps({"attempt": 3, "backoff.s": 0.5}, sort_keys=True))],
             links=[(trace_hex, f"{other.context.span_id:016x}", json.dumps({"opentracing.ref_type": "follows_from"}))]),
    ]
    assert root.context.trace_id < 2**64, "jaeger-client makes 64-bit trace ids by default"
    return trace_hex, expected


# --------------------------------------------------------------------------
# py_zipkin
# --------------------------------------------------------------------------


def run_py_zipkin(args) -> tuple[str, list[dict]]:
    from py_zipkin import Encoding, Kind
    from py_zipkin.transport import BaseTransportHandler
    from py_zipkin.zipkin import zipkin_span

    encoding = {"py-zipkin-v2-json": Encoding.V2_JSON, "py-zipkin-v1-json": Encoding.V1_JSON, "py-zipkin-v2-proto3": Encoding.V2_PROTO3}[args.client]
    path = "/api/v1/spans" if encoding == Encoding.V1_JSON else "/api/v2/spans"
    content_type = "application/x-protobuf" if encoding == Encoding.V2_PROTO3 else "application/json"
    sent: list[bytes] = []

    class Http(BaseTransportHandler):
        def get_max_payload_bytes(self):
            return None

        def send(self, payload):
            payload = payload.encode() if isinstance(payload, str) else payload
            sent.append(payload)
            req = urllib.request.Request(f"http://{args.zipkin}{path}", data=payload, method="POST", headers={"Content-Type": content_type})
            with urllib.request.urlopen(req, timeout=10) as r:
                if r.status != 202:
                    raise RuntimeError(f"POST {path}: {r.status} {r.read()!r}")

    service = f"legacy-{args.client}"
    with zipkin_span(service_name=service, span_name="GET /pyz", transport_handler=Http(), sample_rate=100.0, encoding=encoding,
                     kind=Kind.SERVER, host="10.0.0.5", port=8080, binary_annotations={"http.method": "GET"}) as root:
        # (string values: py_zipkin's proto3 encoder takes nothing else)
        root.update_binary_annotations({"items.count": "3"})
        with zipkin_span(service_name=service, span_name="db query", kind=Kind.CLIENT,
                         binary_annotations={"db.system": "sqlite", "error": "database is locked"}) as db:
            db.add_sa_binary_annotation(port=5432, service_name="postgres", host="10.9.8.7")
            db.add_annotation("cache miss")
            time.sleep(0.002)
        with zipkin_span(service_name=service, span_name="local work", kind=Kind.LOCAL):
            time.sleep(0.001)
    assert sent, "py_zipkin sent nothing"

    # Timestamps and ids as the client put them on the wire.
    wire = decode_py_zipkin_payloads(sent, encoding)
    trace_hex = f"{int(root.zipkin_attrs.trace_id, 16):032x}"
    root_id, db_id = root.zipkin_attrs.span_id, db.zipkin_attrs.span_id
    v1 = encoding == Encoding.V1_JSON

    def base(name: str) -> dict:
        w = wire[name]
        return {"trace_id": trace_hex, "span_id": w["id"], "name": name, "start": w["timestamp"] * 1000,
                "end": (w["timestamp"] + w["duration"]) * 1000, "trace_state": "", "flags": 0, "links": [], "scope": ("", "")}

    host_attrs = {"net.host.ip": "10.0.0.5", "net.host.port": 8080}
    res = {"service.name": service}
    expected = [
        {**base("GET /pyz"), "resource": res, "kind": "SPAN_KIND_SERVER", "parent": "", "status": ("STATUS_CODE_UNSET", ""),
         "attrs": {"http.method": "GET", "items.count": "3", **host_attrs}, "events": []},
        {**base("db query"), "resource": res, "kind": "SPAN_KIND_CLIENT", "parent": root_id, "status": ("STATUS_CODE_ERROR", ""),
         "attrs": {"db.system": "sqlite", "error": "database is locked", "peer.service": "postgres", "net.peer.ip": "10.9.8.7",
                   "net.peer.port": 5432, **host_attrs},
         "events": [(wire["db query"]["annotations"]["cache miss"] * 1000, "cache miss", "{}")]},
        # py_zipkin's v1 encoding of a local span carries no endpoint and no
        # "lc" annotation: nothing names its service.
        {**base("local work"), "resource": {} if v1 else res, "kind": "SPAN_KIND_UNSPECIFIED", "parent": root_id,
         "status": ("STATUS_CODE_UNSET", ""), "attrs": {} if v1 else host_attrs, "events": []},
    ]
    assert wire["db query"]["id"] == db_id
    return trace_hex, expected


def decode_py_zipkin_payloads(payloads: list[bytes], encoding) -> dict[str, dict]:
    """name -> {id, timestamp, duration, annotations{value: ts}} as sent."""
    from py_zipkin import Encoding

    out = {}
    for payload in payloads:
        if encoding == Encoding.V2_PROTO3:
            from py_zipkin.encoding.protobuf import zipkin_pb2

            for s in zipkin_pb2.ListOfSpans.FromString(payload).spans:
                out[s.name] = {"id": s.id.hex(), "timestamp": s.timestamp, "duration": s.duration,
                               "annotations": {a.value: a.timestamp for a in s.annotations}}
            continue
        for s in json.loads(payload):
            ann = {a["value"]: int(a["timestamp"]) for a in s.get("annotations", [])}
            ts, dur = s.get("timestamp"), s.get("duration")
            if ts is None:  # v1 without span timestamps: the core annotations
                start = ann.get("sr", ann.get("cs"))
                end = ann.get("ss", ann.get("cr"))
                ts, dur = start, end - start
            out[s["name"]] = {"id": s["id"], "timestamp": int(ts), "duration": int(dur), "annotations": ann}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--client", required=True)
    p.add_argument("--http", default=os.environ.get("SPANLAKE_HTTP"))
    p.add_argument("--jaeger-grpc", default=os.environ.get("SPANLAKE_JAEGER_GRPC"))
    p.add_argument("--jaeger-thrift-http", default=os.environ.get("SPANLAKE_JAEGER_THRIFT_HTTP"))
    p.add_argument("--jaeger-compact", default=os.environ.get("SPANLAKE_JAEGER_COMPACT"))
    p.add_argument("--jaeger-binary", default=os.environ.get("SPANLAKE_JAEGER_BINARY"))
    p.add_argument("--zipkin", default=os.environ.get("SPANLAKE_ZIPKIN"))
    args = p.parse_args()
    if args.client == "jaeger-client":
        trace_hex, expected = run_jaeger_client(args)
    elif args.client.startswith("py-zipkin"):
        trace_hex, expected = run_py_zipkin(args)
    else:
        trace_hex, expected = run_otel(args)
    actual = fetch(args.http, trace_hex, len(expected))
    problems = compare(expected, actual)
    if problems:
        print(f"{args.client}: trace {trace_hex} differs:", file=sys.stderr)
        for line in problems:
            print("  " + line, file=sys.stderr)
        return 1
    print(f"OK {args.client} {trace_hex} {len(actual)} spans")
    return 0


if __name__ == "__main__":
    sys.exit(main())
