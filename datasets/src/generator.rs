//! The trace generator: walks the [`Topology`] once per request and emits
//! its spans as OTLP, batched into request-sized `ExportTraceServiceRequest`s.
//!
//! A trace starts at an edge operation (user traffic arriving as a Poisson
//! process) or, for queue workers, as a batch of published messages. Each
//! operation's server span spends lognormal self time around its steps;
//! every remote call is a client span in the caller enclosing the callee's
//! server span, separated by network latency, so children always start and
//! end within their parents. Failures start at error origins (statement
//! timeouts, deadlocks, bugs, ...), are recorded as `exception` events and
//! ERROR statuses, may be retried, and propagate upward with a probability.
//! Consumer traces link to the producer spans of the messages they process.
//!
//! Memory is bounded by one request: traces are complete within the request
//! they are emitted in, and only unconsumed messages are remembered.

use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use rand::{Rng, SeedableRng};

use crate::attrs::{boolean, float, int, string};
use crate::dist::{GenRng, IdSequence, LogNormal, exponential, mix64, skewed_index, weighted_index};
use crate::error::{Error, Result};
use crate::topology::{Call, Endpoint, Operation, PUBLISH_ERROR_WEIGHT, Service, Step, StoreKind, Target, Tier, Topology};
use crate::vocab::{self, Failure, Language, Param, ScopeKind};

/// Most spans in one trace: calls past it are skipped (so a trace and a
/// request stay small however the dice fall).
pub const MAX_TRACE_SPANS: usize = 1000;
/// Fewest services of a topology.
pub const MIN_SERVICES: usize = 5;
/// Most services of a topology.
pub const MAX_SERVICES: usize = 500;
/// Share of edge requests answered with a 4xx (not an error on the server).
const CLIENT_ERROR_RATE: f64 = 0.03;
/// Share of edge requests from a signed-in user.
const SIGNED_IN_RATE: f64 = 0.7;
/// Distinct users, products.
const USERS: usize = 500_000;
const PRODUCTS: usize = 50_000;

/// Keys mixed into the seed for the independent random streams.
const TRAFFIC_STREAM: u64 = 0x7472_6166_6669_6321;
const TRACE_ID_STREAM: u64 = 0x7472_6163_6569_6421;
const SPAN_ID_STREAM: u64 = 0x7370_616e_6964_2121;

/// `flags` of a span or link: sampled, with the is-remote bit known.
const FLAGS_LOCAL: u32 = 0x101;
/// `flags` of a span whose parent (or a link whose target) is remote.
const FLAGS_REMOTE: u32 = 0x301;

const MS: f64 = 1_000_000.0;
const US: f64 = 1_000.0;

/// What a dataset looks like; [`GenConfig::default`] is `tiny`, seed 1, 30 services.
#[derive(Debug, Clone, PartialEq)]
pub struct GenConfig {
    /// Seed of every random choice: same seed, same bytes.
    pub seed: u64,
    /// Services in the topology ([`MIN_SERVICES`]..=[`MAX_SERVICES`]).
    pub services: usize,
    /// Spans to generate: generation stops at the first trace boundary at or past it.
    pub spans: u64,
    /// Spans per request: a request is cut at the first trace boundary at or past it.
    pub batch_spans: usize,
    /// Start of the first trace, in Unix nanoseconds.
    pub start_unix_nano: u64,
    /// Mean rate of user requests (edge traces) in generated time.
    pub traces_per_second: f64,
}

/// 2025-01-01T00:00:00Z, the default start of generated time.
pub const DEFAULT_START_UNIX_NANO: u64 = 1_735_689_600_000_000_000;

impl Default for GenConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            services: 30,
            spans: crate::Size::Tiny.spans(),
            batch_spans: 1000,
            start_unix_nano: DEFAULT_START_UNIX_NANO,
            traces_per_second: 200.0,
        }
    }
}

impl GenConfig {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        if !(MIN_SERVICES..=MAX_SERVICES).contains(&self.services) {
            return Err(Error::InvalidConfig(format!("services must be {MIN_SERVICES}..={MAX_SERVICES}, not {}", self.services)));
        }
        if self.batch_spans == 0 {
            return Err(Error::InvalidConfig("batch_spans must be at least 1".into()));
        }
        if !(self.traces_per_second > 0.0 && self.traces_per_second.is_finite()) {
            return Err(Error::InvalidConfig(format!("traces_per_second must be positive, not {}", self.traces_per_second)));
        }
        Ok(())
    }
}

/// Counts of what a [`Generator`] has produced so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GenStats {
    /// Spans emitted.
    pub spans: u64,
    /// Traces emitted (user requests and consumer batches).
    pub traces: u64,
    /// Requests emitted.
    pub requests: u64,
}

/// A span on its way into a request, with what decides its resource and scope.
struct PendingSpan {
    service: u32,
    instance: u32,
    scope: ScopeKind,
    span: Span,
}

/// A published, not yet consumed message.
struct Message {
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    end: u64,
    message_id: String,
}

/// A deterministic stream of OTLP export requests; see the module docs.
pub struct Generator {
    topology: Topology,
    config: GenConfig,
    rng: GenRng,
    trace_ids: IdSequence,
    span_ids: IdSequence,
    /// Start of the next user request.
    next_start: u64,
    /// Unconsumed messages, per topic.
    messages: Vec<Vec<Message>>,
    /// Size of the next consumer batch, per topic.
    next_batch: Vec<usize>,
    /// Spans of the request being filled.
    spans: Vec<PendingSpan>,
    stats: GenStats,
    done: bool,
}

impl Generator {
    /// A generator for `config`.
    pub fn new(config: GenConfig) -> Result<Self> {
        config.validate()?;
        let topology = Topology::build(config.seed, config.services);
        let mut rng = GenRng::seed_from_u64(mix64(config.seed ^ TRAFFIC_STREAM));
        let next_batch = topology.topics.iter().map(|t| rng.random_range(1..=t.max_batch)).collect();
        Ok(Self {
            messages: topology.topics.iter().map(|_| Vec::new()).collect(),
            next_batch,
            trace_ids: IdSequence::new(mix64(config.seed ^ TRACE_ID_STREAM)),
            span_ids: IdSequence::new(mix64(config.seed ^ SPAN_ID_STREAM)),
            next_start: config.start_unix_nano,
            spans: Vec::with_capacity(config.batch_spans + MAX_TRACE_SPANS),
            stats: GenStats::default(),
            done: false,
            topology,
            config,
            rng,
        })
    }

    /// The world the traces walk.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// What has been produced so far.
    pub fn stats(&self) -> GenStats {
        self.stats
    }

    /// The configuration.
    pub fn config(&self) -> &GenConfig {
        &self.config
    }

    /// Generates one user request and the consumer batches it makes due.
    fn generate_traces(&mut self) {
        let entry = weighted_index(&mut self.rng, &self.topology.entry_weights);
        let (service, operation) = self.topology.entries[entry];
        let start = self.next_start;
        self.next_start += exponential(&mut self.rng, 1e9 / self.config.traces_per_second) as u64;
        let mut writer = self.writer();
        let client_ip = writer.ctx.client_ip.clone();
        writer.serve(service, operation, None, start, &client_ip, None, Vec::new());
        self.stats.traces += 1;

        for topic in 0..self.topology.topics.len() {
            while self.messages[topic].len() >= self.next_batch[topic] {
                let batch: Vec<Message> = self.messages[topic].drain(..self.next_batch[topic]).collect();
                self.next_batch[topic] = self.rng.random_range(1..=self.topology.topics[topic].max_batch);
                self.consumer_trace(topic, batch);
            }
        }
    }

    /// A worker's trace processing `batch`, linked to the messages' producer spans.
    fn consumer_trace(&mut self, topic: usize, batch: Vec<Message>) {
        let lag = LogNormal::new(20.0 * MS, 1.0).sample_ns(&mut self.rng);
        let start = batch.iter().map(|m| m.end).max().unwrap_or(self.next_start) + lag;
        let links = batch
            .into_iter()
            .map(|m| Link {
                trace_id: m.trace_id,
                span_id: m.span_id,
                attributes: vec![string("messaging.message.id", m.message_id)],
                flags: FLAGS_REMOTE,
                ..Default::default()
            })
            .collect();
        let (service, operation) = (self.topology.topics[topic].consumer, self.topology.topics[topic].consumer_operation);
        let mut writer = self.writer();
        let broker = writer.topology.topics[topic].host.clone();
        writer.serve(service, operation, None, start, &broker, None, links);
        self.stats.traces += 1;
    }

    /// A writer for a new trace, appending to the current request.
    fn writer(&mut self) -> TraceWriter<'_> {
        let trace_high = self.trace_ids.next_id();
        let mut trace_id = trace_high.to_be_bytes().to_vec();
        trace_id.extend_from_slice(&self.rng.random::<u64>().to_be_bytes());
        let ctx = RequestContext::new(&mut self.rng);
        TraceWriter {
            topology: &self.topology,
            rng: &mut self.rng,
            span_ids: &mut self.span_ids,
            first: self.spans.len(),
            spans: &mut self.spans,
            messages: &mut self.messages,
            trace_id,
            ctx,
        }
    }

    /// Groups the pending spans by resource and scope into one request.
    fn take_request(&mut self) -> ExportTraceServiceRequest {
        let mut resource_spans: Vec<ResourceSpans> = Vec::new();
        let mut scopes_of: Vec<Vec<ScopeKind>> = Vec::new();
        let mut index: HashMap<(u32, u32), usize> = HashMap::new();
        self.stats.spans += self.spans.len() as u64;
        self.stats.requests += 1;
        for pending in self.spans.drain(..) {
            let service = &self.topology.services[pending.service as usize];
            let r = *index.entry((pending.service, pending.instance)).or_insert_with(|| {
                resource_spans.push(ResourceSpans {
                    resource: Some(service.instances[pending.instance as usize].resource.clone()),
                    scope_spans: Vec::new(),
                    schema_url: service.schema_url.to_owned(),
                });
                scopes_of.push(Vec::new());
                resource_spans.len() - 1
            });
            let s = match scopes_of[r].iter().position(|k| *k == pending.scope) {
                Some(s) => s,
                None => {
                    scopes_of[r].push(pending.scope);
                    resource_spans[r].scope_spans.push(ScopeSpans {
                        scope: Some(service.scopes[pending.scope.index()].clone()),
                        spans: Vec::new(),
                        schema_url: service.schema_url.to_owned(),
                    });
                    scopes_of[r].len() - 1
                }
            };
            resource_spans[r].scope_spans[s].spans.push(pending.span);
        }
        ExportTraceServiceRequest { resource_spans }
    }
}

impl Iterator for Generator {
    type Item = ExportTraceServiceRequest;

    fn next(&mut self) -> Option<ExportTraceServiceRequest> {
        while !self.done && self.spans.len() < self.config.batch_spans {
            if self.stats.spans + self.spans.len() as u64 >= self.config.spans {
                self.done = true;
                break;
            }
            self.generate_traces();
        }
        if self.spans.is_empty() {
            return None;
        }
        Some(self.take_request())
    }
}

/// What one user request is about: the ids that show up in its URLs,
/// statements and attributes.
struct RequestContext {
    user: Option<String>,
    session: String,
    product: String,
    order: String,
    cart: String,
    id: u64,
    client_ip: String,
    user_agent: &'static str,
}

impl RequestContext {
    fn new(rng: &mut GenRng) -> Self {
        let user_number = skewed_index(rng, USERS, 2.5);
        let user = rng.random_bool(SIGNED_IN_RATE).then(|| format!("u{user_number:07}"));
        let cart = format!("{:016x}", mix64(user_number as u64 ^ 0xca27));
        const BASE36: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let mut order = String::from("ord_");
        for _ in 0..12 {
            order.push(BASE36[rng.random_range(0..BASE36.len())] as char);
        }
        Self {
            session: format!("{:032x}", (rng.random::<u64>() as u128) << 64 | rng.random::<u64>() as u128),
            product: format!("SKU-{:06}", skewed_index(rng, PRODUCTS, 3.0)),
            order,
            cart,
            id: rng.random_range(1..10_000_000),
            client_ip: format!("{}.{}.{}.{}", rng.random_range(1..224), rng.random::<u8>(), rng.random::<u8>(), rng.random_range(1..255)),
            user_agent: vocab::USER_AGENTS[skewed_index(rng, vocab::USER_AGENTS.len(), 2.0)],
            user,
        }
    }

    /// `route` with its parameter (if any) filled in.
    fn path(&self, route: &str, param: Param) -> String {
        match param.placeholder() {
            placeholder if !placeholder.is_empty() && route.contains(placeholder) => route.replace(placeholder, &self.value(param)),
            _ => route.to_owned(),
        }
    }

    /// The value of `param` in this request.
    fn value(&self, param: Param) -> String {
        match param {
            Param::None => self.session.clone(),
            Param::Product => self.product.clone(),
            Param::Order => self.order.clone(),
            Param::User => self.user.clone().unwrap_or_else(|| "anonymous".to_owned()),
            Param::Cart => self.cart.clone(),
            Param::Id => self.id.to_string(),
        }
    }
}

/// A failure as the caller sees it: what went wrong, and where.
#[derive(Debug, Clone)]
struct Failed {
    failure: Failure,
    /// The store, topic or service that failed.
    peer: String,
}

/// The span a call is made from.
#[derive(Clone, Copy)]
struct Caller<'t> {
    service: usize,
    instance: usize,
    span_id: [u8; 8],
    operation: &'t Operation,
}

/// Writes the spans of one trace.
struct TraceWriter<'g> {
    topology: &'g Topology,
    rng: &'g mut GenRng,
    span_ids: &'g mut IdSequence,
    spans: &'g mut Vec<PendingSpan>,
    messages: &'g mut [Vec<Message>],
    /// Index of the trace's first span in `spans`.
    first: usize,
    trace_id: Vec<u8>,
    ctx: RequestContext,
}

/// Network latency of one direction of an in-cluster call.
fn network_latency() -> LogNormal {
    LogNormal::new(250.0 * US, 0.5)
}

/// Time between steps of a handler.
fn step_gap() -> LogNormal {
    LogNormal::new(20.0 * US, 0.6)
}

impl<'g> TraceWriter<'g> {
    fn next_span_id(&mut self) -> [u8; 8] {
        self.span_ids.next_id().to_be_bytes()
    }

    /// Whether the trace has reached [`MAX_TRACE_SPANS`].
    fn full(&self) -> bool {
        self.spans.len() - self.first >= MAX_TRACE_SPANS
    }

    /// Keeps a place for a span whose end is not known yet.
    fn reserve(&mut self) -> usize {
        self.spans.push(PendingSpan { service: 0, instance: 0, scope: ScopeKind::Manual, span: Span::default() });
        self.spans.len() - 1
    }

    /// A span of this trace with the common fields filled in.
    #[allow(clippy::too_many_arguments)]
    fn span(&self, span_id: [u8; 8], parent: Option<[u8; 8]>, name: String, kind: SpanKind, start: u64, end: u64, remote_parent: bool) -> Span {
        Span {
            trace_id: self.trace_id.clone(),
            span_id: span_id.to_vec(),
            parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
            flags: if remote_parent { FLAGS_REMOTE } else { FLAGS_LOCAL },
            name,
            kind: kind as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            ..Default::default()
        }
    }

    /// The `exception` event `service` records for `failed` at `time`.
    fn exception_event(&self, service: &Service, function: &str, failed: &Failed, time: u64) -> Event {
        let (ty, message) = failed.failure.exception(service.language);
        let message = message.replace("{peer}", &failed.peer);
        let line = (mix64(function.len() as u64 ^ failed.peer.len() as u64) % 400) as u32 + 20;
        Event {
            time_unix_nano: time,
            name: "exception".to_owned(),
            attributes: vec![
                string("exception.type", ty),
                string("exception.message", &message),
                string("exception.stacktrace", vocab::stacktrace(service.language, &service.name, function, ty, &message, line)),
                boolean("exception.escaped", true),
            ],
            dropped_attributes_count: 0,
        }
    }

    fn error_status(service: &Service, failed: &Failed) -> Option<Status> {
        let (_, message) = failed.failure.exception(service.language);
        Some(Status { message: message.replace("{peer}", &failed.peer), code: StatusCode::Error as i32 })
    }

    /// Serves `operation` of `service`: the server (or consumer) span and
    /// everything below it. Returns its end and the failure it answers with.
    #[allow(clippy::too_many_arguments)]
    fn serve(
        &mut self,
        service: usize,
        operation: usize,
        parent: Option<[u8; 8]>,
        start: u64,
        peer_address: &str,
        caller_language: Option<Language>,
        links: Vec<Link>,
    ) -> (u64, Option<Failed>) {
        let topology = self.topology;
        let svc = &topology.services[service];
        let op = &svc.operations[operation];
        let instance = self.rng.random_range(0..svc.instances.len());
        let span_id = self.next_span_id();
        let slot = self.reserve();
        let caller = Caller { service, instance, span_id, operation: op };

        let self_time = op.self_time.sample_ns(self.rng);
        let mut t = start + self_time * 2 / 5;
        let client_error = svc.tier == Tier::Edge && !op.steps.is_empty() && self.rng.random_bool(CLIENT_ERROR_RATE);
        let mut failed: Option<Failed> = None;
        for (i, step) in op.steps.iter().enumerate() {
            if failed.is_some() || (client_error && i > 1) || self.full() {
                break;
            }
            t = self.step(&caller, step, t, &mut failed) + step_gap().sample_ns(self.rng);
        }
        t += self_time - self_time * 2 / 5;
        if failed.is_none() && self.rng.random_bool(topology.error_probability(op.error_weight)) {
            failed = Some(Failed { failure: Failure::Bug, peer: svc.name.clone() });
        }
        let end = t;

        let (kind, scope) = match op.endpoint {
            Endpoint::Http { .. } => (SpanKind::Server, ScopeKind::HttpServer),
            Endpoint::Grpc { .. } => (SpanKind::Server, ScopeKind::Grpc),
            Endpoint::Consume { .. } => (SpanKind::Consumer, ScopeKind::Messaging),
        };
        let mut span = self.span(span_id, parent, op.span_name.clone(), kind, start, end, parent.is_some());
        span.links = links;
        let batch_size = span.links.len() as i64;
        span.attributes = match &op.endpoint {
            Endpoint::Http { method, route } => {
                let status = match &failed {
                    Some(f) => f.failure.http_status(),
                    None if client_error => [400, 401, 404, 404, 429][self.rng.random_range(0..5)],
                    None => success_status(method),
                };
                self.http_server_attributes(svc, op, method, route, status, peer_address, caller_language)
            }
            Endpoint::Grpc { service: rpc_service, method } => {
                let code = failed.as_ref().map(|f| f.failure.grpc_status().0).unwrap_or(0);
                let mut attributes = vec![
                    string("rpc.system", "grpc"),
                    string("rpc.service", rpc_service),
                    string("rpc.method", method),
                    int("rpc.grpc.status_code", code),
                ];
                if svc.stable_semconv {
                    attributes.push(string("server.address", &svc.host));
                    attributes.push(int("server.port", svc.port));
                    attributes.push(string("network.peer.address", peer_address));
                } else {
                    attributes.push(string("net.host.name", &svc.host));
                    attributes.push(int("net.host.port", svc.port));
                    attributes.push(string("net.sock.peer.addr", peer_address));
                }
                attributes
            }
            Endpoint::Consume { topic } => {
                let topic = &topology.topics[*topic];
                let mut attributes = vec![
                    string("messaging.system", topic.system),
                    string("messaging.destination.name", &topic.name),
                    string("messaging.operation", "process"),
                    string("messaging.consumer.group.name", &svc.name),
                    int("messaging.batch.message_count", batch_size),
                    string("server.address", peer_address),
                ];
                if topic.system == "kafka" {
                    attributes.push(int("messaging.kafka.destination.partition", self.rng.random_range(0..topic.partitions) as i64));
                }
                attributes
            }
        };
        if let Some(key) = op.param.attribute() {
            span.attributes.push(string(key, self.ctx.value(op.param)));
        }
        if op.param == Param::Order {
            span.attributes.push(float("app.order.total", (mix64(self.ctx.id) % 50_000) as f64 / 100.0 + 5.0));
        }
        if let Some(f) = &failed {
            span.status = Self::error_status(svc, f);
            span.events.push(self.exception_event(svc, &op.function, f, end.saturating_sub(1).max(start)));
            if svc.stable_semconv {
                span.attributes.push(string("error.type", f.failure.exception(svc.language).0));
            }
        }
        self.spans[slot] = PendingSpan { service: service as u32, instance: instance as u32, scope, span };
        let seen_by_caller = failed.map(|f| Failed {
            failure: if f.failure.is_timeout() { Failure::UpstreamTimeout } else { Failure::Upstream },
            peer: svc.name.clone(),
        });
        (end, seen_by_caller)
    }

    #[allow(clippy::too_many_arguments)]
    fn http_server_attributes(
        &self,
        svc: &Service,
        op: &Operation,
        method: &str,
        route: &str,
        status: i64,
        peer_address: &str,
        caller_language: Option<Language>,
    ) -> Vec<KeyValue> {
        let path = self.ctx.path(route, op.param);
        let edge = svc.tier == Tier::Edge;
        let scheme = if edge { "https" } else { "http" };
        let user_agent = match caller_language {
            None => self.ctx.user_agent,
            Some(language) => client_user_agent(language),
        };
        let body_size = (method == "POST" || method == "PUT").then(|| 200 + (mix64(self.ctx.id) % 4000) as i64);
        let mut attributes = if svc.stable_semconv {
            let mut a = vec![
                string("http.request.method", method),
                string("http.route", route),
                string("url.path", path),
                string("url.scheme", scheme),
                int("http.response.status_code", status),
                string("server.address", &svc.host),
                int("server.port", svc.port),
                string("network.protocol.version", if edge { "2" } else { "1.1" }),
                string("client.address", peer_address),
                string("user_agent.original", user_agent),
            ];
            if let Some(size) = body_size {
                a.push(int("http.request.body.size", size));
            }
            a
        } else {
            let mut a = vec![
                string("http.method", method),
                string("http.route", route),
                string("http.target", path),
                string("http.scheme", scheme),
                int("http.status_code", status),
                string("net.host.name", &svc.host),
                int("net.host.port", svc.port),
                string("http.flavor", if edge { "2.0" } else { "1.1" }),
                string(if edge { "http.client_ip" } else { "net.sock.peer.addr" }, peer_address),
                string("http.user_agent", user_agent),
            ];
            if let Some(size) = body_size {
                a.push(int("http.request_content_length", size));
            }
            a
        };
        if edge {
            if let Some(user) = &self.ctx.user {
                attributes.push(string("enduser.id", user));
            }
            attributes.push(string("session.id", &self.ctx.session));
        }
        attributes
    }

    /// Runs one step from `t`; returns when it ends.
    fn step(&mut self, caller: &Caller<'_>, step: &Step, t: u64, failed: &mut Option<Failed>) -> u64 {
        match step {
            Step::Call(call) => self.call(caller, call, t, failed),
            Step::Parallel(calls) => {
                let mut end = t;
                for call in calls {
                    let start = t + LogNormal::new(15.0 * US, 0.5).sample_ns(self.rng);
                    end = end.max(self.call(caller, call, start, failed));
                }
                end
            }
            Step::CacheAside { lookup, miss_ratio, on_miss } => {
                let mut t = self.call(caller, lookup, t, failed);
                if failed.is_none() && self.rng.random_bool(*miss_ratio) {
                    for call in on_miss {
                        if failed.is_some() {
                            break;
                        }
                        t = self.call(caller, call, t, failed) + step_gap().sample_ns(self.rng);
                    }
                }
                t
            }
        }
    }

    /// Makes `call` (maybe repeated, maybe retried); returns when it ends.
    fn call(&mut self, caller: &Caller<'_>, call: &Call, mut t: u64, failed: &mut Option<Failed>) -> u64 {
        if !self.rng.random_bool(call.probability) {
            return t;
        }
        let repeats = self.rng.random_range(1..=call.max_repeat);
        for _ in 0..repeats {
            if self.full() {
                break;
            }
            let (end, mut failure) = self.attempt(caller, &call.target, t, 0);
            t = end;
            if failure.is_some() && self.rng.random_bool(call.retry) && !self.full() {
                t += LogNormal::new(25.0 * MS, 0.5).sample_ns(self.rng);
                let (end, again) = self.attempt(caller, &call.target, t, 1);
                t = end;
                failure = again;
            }
            if let Some(f) = failure
                && self.rng.random_bool(call.propagate)
            {
                *failed = Some(f);
                break;
            }
            t += step_gap().sample_ns(self.rng);
        }
        t
    }

    /// One attempt of a call: its client, producer or internal span (and
    /// for a service, everything the callee does).
    fn attempt(&mut self, caller: &Caller<'_>, target: &Target, start: u64, resend: i64) -> (u64, Option<Failed>) {
        match target {
            Target::Service { service, operation } => self.call_service(caller, *service, *operation, start, resend),
            Target::Store { store, query } => self.query_store(caller, *store, *query, start),
            Target::Publish { topic } => self.publish(caller, *topic, start),
            Target::Internal { name, function, duration } => {
                let span_id = self.next_span_id();
                let end = start + duration.sample_ns(self.rng);
                let mut span = self.span(span_id, Some(caller.span_id), name.clone(), SpanKind::Internal, start, end, false);
                let svc = &self.topology.services[caller.service];
                let scope = &svc.scopes[ScopeKind::Manual.index()].name;
                span.attributes = vec![string("code.function", function), string("code.namespace", scope)];
                if function.starts_with("serialize") || function.starts_with("render") {
                    span.attributes.push(int("app.response.bytes", 512 + (mix64(self.ctx.id ^ start) % 65536) as i64));
                }
                self.push(caller, ScopeKind::Manual, span);
                (end, None)
            }
        }
    }

    fn push(&mut self, caller: &Caller<'_>, scope: ScopeKind, span: Span) {
        self.spans.push(PendingSpan { service: caller.service as u32, instance: caller.instance as u32, scope, span });
    }

    /// A client span to `service` enclosing its server span.
    fn call_service(&mut self, caller: &Caller<'_>, service: usize, operation: usize, start: u64, resend: i64) -> (u64, Option<Failed>) {
        let topology = self.topology;
        let from = &topology.services[caller.service];
        let to = &topology.services[service];
        let op = &to.operations[operation];
        let span_id = self.next_span_id();
        let slot = self.reserve();
        let there = start + network_latency().sample_ns(self.rng);
        let caller_ip = from.instances[caller.instance].ip.clone();
        let (served_end, failed) = self.serve(service, operation, Some(span_id), there, &caller_ip, Some(from.language), Vec::new());
        let end = served_end + network_latency().sample_ns(self.rng);

        let (name, scope, mut attributes) = match &op.endpoint {
            Endpoint::Http { method, route } => {
                let status = failed.as_ref().map(|f| f.failure.http_status()).unwrap_or_else(|| success_status(method));
                let url = format!("http://{}:{}{}", to.host, to.port, self.ctx.path(route, op.param));
                let attributes = if from.stable_semconv {
                    let mut a = vec![
                        string("http.request.method", *method),
                        string("url.full", url),
                        string("server.address", &to.host),
                        int("server.port", to.port),
                        string("network.protocol.version", "1.1"),
                        int("http.response.status_code", status),
                    ];
                    if resend > 0 {
                        a.push(int("http.resend_count", resend));
                    }
                    a
                } else {
                    vec![
                        string("http.method", *method),
                        string("http.url", url),
                        string("net.peer.name", &to.host),
                        int("net.peer.port", to.port),
                        string("http.flavor", "1.1"),
                        int("http.status_code", status),
                    ]
                };
                let name = if from.stable_semconv { (*method).to_owned() } else { format!("HTTP {method}") };
                (name, ScopeKind::HttpClient, attributes)
            }
            Endpoint::Grpc { service: rpc_service, method } => {
                let code = failed.as_ref().map(|f| f.failure.grpc_status().0).unwrap_or(0);
                let (address_key, port_key) = if from.stable_semconv { ("server.address", "server.port") } else { ("net.peer.name", "net.peer.port") };
                let attributes = vec![
                    string("rpc.system", "grpc"),
                    string("rpc.service", rpc_service),
                    string("rpc.method", method),
                    int("rpc.grpc.status_code", code),
                    string(address_key, &to.host),
                    int(port_key, to.port),
                ];
                (op.span_name.clone(), ScopeKind::Grpc, attributes)
            }
            Endpoint::Consume { .. } => unreachable!("consumers are not called"),
        };
        attributes.push(string("peer.service", &to.name));
        let mut span = self.span(span_id, Some(caller.span_id), name, SpanKind::Client, start, end, false);
        span.attributes = attributes;
        if let Some(f) = &failed {
            span.status = Self::error_status(from, f);
        }
        self.spans[slot] = PendingSpan { service: caller.service as u32, instance: caller.instance as u32, scope, span };
        (end, failed)
    }

    /// A database or cache client span.
    fn query_store(&mut self, caller: &Caller<'_>, store: usize, query: usize, start: u64) -> (u64, Option<Failed>) {
        let topology = self.topology;
        let st = &topology.stores[store];
        let q = &st.queries[query];
        let svc = &topology.services[caller.service];
        let failure = self.rng.random_bool(topology.error_probability(q.error_weight)).then(|| {
            let failures = st.kind.failures();
            failures[self.rng.random_range(0..failures.len())]
        });
        let duration = match failure {
            Some(Failure::CacheTimeout) => LogNormal::new(1_000.0 * MS, 0.1).sample_ns(self.rng),
            Some(f) if f.is_timeout() => LogNormal::new(2_000.0 * MS, 0.3).sample_ns(self.rng),
            Some(Failure::DbConnection) => LogNormal::new(30.0 * MS, 0.5).sample_ns(self.rng),
            _ => q.latency.sample_ns(self.rng),
        };
        let end = start + duration;
        let span_id = self.next_span_id();
        let mut span = self.span(span_id, Some(caller.span_id), q.span_name.clone(), SpanKind::Client, start, end, false);
        let statement = if q.statement.contains("{v}") { q.statement.replace("{v}", &self.ctx.value(caller.operation.param)) } else { q.statement.clone() };
        let (address_key, port_key) = if svc.stable_semconv { ("server.address", "server.port") } else { ("net.peer.name", "net.peer.port") };
        span.attributes = vec![
            string("db.system", st.kind.db_system()),
            string("db.statement", statement),
            string("db.operation", q.operation),
            string(address_key, &st.host),
            int(port_key, st.port),
            string("peer.service", &st.name),
        ];
        if !st.database.is_empty() {
            if st.kind.is_cache() {
                span.attributes.push(int("db.redis.database_index", st.database.parse().unwrap_or(0)));
            } else {
                span.attributes.push(string("db.name", &st.database));
            }
        }
        if !q.table.is_empty() {
            let key = if st.kind == StoreKind::Mongo { "db.mongodb.collection" } else { "db.sql.table" };
            span.attributes.push(string(key, &q.table));
        }
        if q.operation == "SELECT" && failure.is_none() {
            span.attributes.push(int("db.response.returned_rows", if q.statement.contains("LIMIT") { (mix64(start) % 51) as i64 } else { 1 }));
        }
        let failed = failure.map(|failure| Failed { failure, peer: format!("{}:{}", st.host, st.port) });
        if let Some(f) = &failed {
            span.status = Self::error_status(svc, f);
            span.events.push(self.exception_event(svc, &caller.operation.function, f, end));
        }
        self.push(caller, st.kind.scope_kind(), span);
        (end, failed)
    }

    /// A producer span; the message waits for its consumer.
    fn publish(&mut self, caller: &Caller<'_>, topic: usize, start: u64) -> (u64, Option<Failed>) {
        let topology = self.topology;
        let tp = &topology.topics[topic];
        let svc = &topology.services[caller.service];
        let failed = self.rng.random_bool(topology.error_probability(PUBLISH_ERROR_WEIGHT)).then(|| Failed { failure: Failure::Publish, peer: tp.name.clone() });
        let duration = match failed {
            Some(_) => LogNormal::new(500.0 * MS, 0.3).sample_ns(self.rng),
            None => LogNormal::new(1.5 * MS, 0.7).sample_ns(self.rng),
        };
        let end = start + duration;
        let span_id = self.next_span_id();
        let message_id = format!("{:016x}{:016x}", self.rng.random::<u64>(), self.rng.random::<u64>());
        let mut span = self.span(span_id, Some(caller.span_id), format!("{} publish", tp.name), SpanKind::Producer, start, end, false);
        span.attributes = vec![
            string("messaging.system", tp.system),
            string("messaging.destination.name", &tp.name),
            string("messaging.operation", "publish"),
            string("messaging.message.id", &message_id),
            string("server.address", &tp.host),
            int("server.port", tp.port),
            string("peer.service", tp.system),
        ];
        if tp.system == "kafka" {
            let key = self.ctx.value(caller.operation.param);
            let partition = (mix64(key.len() as u64 ^ self.ctx.id) % tp.partitions as u64) as i64;
            span.attributes.push(int("messaging.kafka.destination.partition", partition));
            span.attributes.push(string("messaging.kafka.message.key", key));
        }
        match &failed {
            Some(f) => {
                span.status = Self::error_status(svc, f);
                span.events.push(self.exception_event(svc, &caller.operation.function, f, end));
            }
            None => self.messages[topic].push(Message { trace_id: self.trace_id.clone(), span_id: span_id.to_vec(), end, message_id }),
        }
        self.push(caller, ScopeKind::Messaging, span);
        (end, failed)
    }
}

/// Status of a successful HTTP request with `method`.
fn success_status(method: &str) -> i64 {
    match method {
        "POST" => 201,
        "DELETE" => 204,
        _ => 200,
    }
}

/// `User-Agent` of the HTTP client library of `language`.
fn client_user_agent(language: Language) -> &'static str {
    match language {
        Language::Java => "Java-http-client/21.0.3",
        Language::Go => "Go-http-client/1.1",
        Language::Python => "python-requests/2.31.0",
        Language::Node => "axios/1.7.2",
    }
}
