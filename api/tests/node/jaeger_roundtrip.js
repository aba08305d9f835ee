#!/usr/bin/env node
// Node's @opentelemetry/exporter-jaeger (jaeger-client's senders) ->
// Spanlake -> Tempo v1 JSON round trip.
//
// Usage: node jaeger_roundtrip.js udp|http
//   udp:  agent UDP, binary protocol (jaeger-client's UDPSender, port 6832)
//   http: collector POST /api/traces (HTTPSender; chunked body)
// Environment: SPANLAKE_HTTP, SPANLAKE_JAEGER_BINARY, SPANLAKE_JAEGER_THRIFT_HTTP.
// Exit 0 with a last line "OK node-<mode> <trace id> <n> spans"; 1 with the
// differences on stderr.
'use strict';

const api = require('@opentelemetry/api');
const { JaegerExporter } = require('@opentelemetry/exporter-jaeger');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const { BasicTracerProvider, SimpleSpanProcessor, InMemorySpanExporter } = require('@opentelemetry/sdk-trace-base');

const SCOPE = ['spanlake.node', '1.2.3'];

function anyValue(v) {
  if ('stringValue' in v) return v.stringValue;
  if ('boolValue' in v) return v.boolValue;
  if ('intValue' in v) return Number(v.intValue);
  if ('doubleValue' in v) return Number(v.doubleValue);
  return JSON.stringify(v);
}

function attrs(list) {
  const out = {};
  for (const a of list || []) out[a.key] = anyValue(a.value || {});
  return sortKeys(out);
}

function sortKeys(o) {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

const b64hex = (s) => (s ? Buffer.from(s, 'base64').toString('hex') : '');

function normalize(doc) {
  const out = [];
  for (const batch of doc.batches || []) {
    const resource = attrs((batch.resource || {}).attributes);
    for (const ss of batch.scopeSpans || []) {
      const scope = ss.scope || {};
      for (const s of ss.spans || []) {
        const status = s.status || {};
        out.push({
          resource,
          scope: [scope.name || '', scope.version || ''],
          trace_id: b64hex(s.traceId),
          span_id: b64hex(s.spanId),
          parent: b64hex(s.parentSpanId),
          name: s.name,
          kind: s.kind || 'SPAN_KIND_UNSPECIFIED',
          start: String(s.startTimeUnixNano),
          end: String(s.endTimeUnixNano),
          status: [status.code || 'STATUS_CODE_UNSET', status.message || ''],
          attrs: attrs(s.attributes),
          events: (s.events || []).map((e) => [String(e.timeUnixNano), e.name || '', attrs(e.attributes)]),
          links: (s.links || []).map((l) => [b64hex(l.traceId), b64hex(l.spanId), attrs(l.attributes)]),
          flags: s.flags || 0,
        });
      }
    }
  }
  return out;
}

const usToNs = (us) => (BigInt(us) * 1000n).toString();
const hrToUs = (hr) => BigInt(hr[0]) * 1000000n + BigInt(Math.round(hr[1] / 1000));

/** The collector's Jaeger translation of what this exporter sends. */
function expected(span) {
  const res = span.resource.attributes;
  // The resource is copied into every span's tags. (jaeger-client encodes
  // every number as a double tag: JSON reads both back as the same number.)
  const a = sortKeys({ ...span.attributes, ...res });
  let status = ['STATUS_CODE_UNSET', ''];
  if (span.status.code === api.SpanStatusCode.ERROR) status = ['STATUS_CODE_ERROR', span.status.message || ''];
  if (span.status.code === api.SpanStatusCode.OK) status = ['STATUS_CODE_OK', ''];
  const kind = span.kind === api.SpanKind.INTERNAL ? 'SPAN_KIND_UNSPECIFIED' : 'SPAN_KIND_' + api.SpanKind[span.kind];
  const start = hrToUs(span.startTime);
  return {
    resource: { 'service.name': res['service.name'] },
    scope: SCOPE,
    trace_id: span.spanContext().traceId,
    span_id: span.spanContext().spanId,
    parent: span.parentSpanContext ? span.parentSpanContext.spanId : '',
    name: span.name,
    kind,
    start: usToNs(start),
    end: usToNs(start + hrToUs(span.duration)),
    status,
    attrs: a,
    // Event time goes through milliseconds in this exporter.
    events: span.events.map((e) => [
      usToNs(BigInt(Math.round(e.time[0] * 1e3 + e.time[1] / 1e6)) * 1000n),
      e.name,
      sortKeys({ ...e.attributes }),
    ]),
    links: span.links.map((l) => [l.context.traceId, l.context.spanId, { 'opentracing.ref_type': 'follows_from' }]),
    flags: 1,
  };
}

async function fetchTrace(http, traceHex, want) {
  const deadline = Date.now() + 30000;
  let spans = [];
  while (Date.now() < deadline) {
    const r = await fetch(`http://${http}/api/traces/${traceHex}`);
    if (r.status === 200) spans = normalize(await r.json());
    else if (r.status !== 404) throw new Error(`GET trace: ${r.status} ${await r.text()}`);
    if (spans.length >= want) return spans;
    await new Promise((res) => setTimeout(res, 200));
  }
  return spans;
}

async function main() {
  const mode = process.argv[2];
  const env = process.env;
  const config = mode === 'udp'
    ? { host: env.SPANLAKE_JAEGER_BINARY.split(':')[0], port: Number(env.SPANLAKE_JAEGER_BINARY.split(':')[1]) }
    : { endpoint: `http://${env.SPANLAKE_JAEGER_THRIFT_HTTP}/api/traces` };
  const exporter = new JaegerExporter(config);
  const memory = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': `node-${mode}`, 'deployment.environment': 'ci', 'host.cpus': 2 }),
    spanProcessors: [new SimpleSpanProcessor(memory), new SimpleSpanProcessor(exporter)],
  });
  const tracer = provider.getTracer(...SCOPE);
  const t0 = (Math.floor(Date.now() / 1000) - 30) * 1000; // ms
  const linked = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: '00f067aa0ba902b7', traceFlags: 1, isRemote: true };
  const root = tracer.startSpan('GET /node', { kind: api.SpanKind.SERVER, startTime: t0,
    attributes: { 'http.method': 'GET', 'http.status_code': 200, ratio: 0.25, cached: false } });
  const ctx = api.trace.setSpan(api.context.active(), root);
  const child = tracer.startSpan('publish', { kind: api.SpanKind.PRODUCER, startTime: t0 + 5,
    attributes: { 'messaging.system': 'kafka', retried: true }, links: [{ context: linked, attributes: { why: 'batch' } }] }, ctx);
  child.addEvent('enqueued', { partition: 3, topic: 'orders' }, t0 + 7);
  child.setStatus({ code: api.SpanStatusCode.ERROR, message: 'broker unavailable' });
  child.end(t0 + 20);
  const internal = tracer.startSpan('render', { kind: api.SpanKind.INTERNAL, startTime: t0 + 21 }, ctx);
  internal.end(t0 + 30);
  root.setStatus({ code: api.SpanStatusCode.OK });
  root.end(t0 + 40);
  await provider.forceFlush();
  const recorded = memory.getFinishedSpans(); // (shutdown clears them)
  await provider.shutdown();

  const traceHex = root.spanContext().traceId;
  const want = recorded.map(expected);
  const got = await fetchTrace(env.SPANLAKE_HTTP, traceHex, want.length);
  const problems = [];
  if (got.length !== want.length) problems.push(`${got.length} spans read back, ${want.length} expected`);
  for (const w of want) {
    const g = got.find((s) => s.span_id === w.span_id);
    if (!g) {
      problems.push(`span ${w.name} missing`);
      continue;
    }
    for (const [field, value] of Object.entries(w)) {
      if (JSON.stringify(g[field]) !== JSON.stringify(value)) {
        problems.push(`span ${w.name}: ${field}\n    want ${JSON.stringify(value)}\n    got  ${JSON.stringify(g[field])}`);
      }
    }
  }
  if (problems.length) {
    console.error(`node-${mode}: trace ${traceHex} differs:\n  ` + problems.join('\n  '));
    process.exit(1);
  }
  console.log(`OK node-${mode} ${traceHex} ${got.length} spans`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
