//! The generated world: a layered service graph drawn once per seed.
//!
//! Services sit in tiers — edge (user traffic) → upper mid-tier → lower
//! mid-tier → backend — plus queue workers. A service only calls services of
//! lower tiers, so the call graph is acyclic and every trace ends. Each
//! operation has a plan: steps run one after another, a step being one call,
//! a parallel fan-out, or a cache-aside lookup; a call targets another
//! service's operation, a data store query (SQL, MongoDB, Redis, Memcached),
//! a topic (publish) or an internal span. Workers consume topics in batches.
//!
//! Error origins (statement timeouts, deadlocks, bugs, ...) have relative
//! weights; [`Topology::error_scale`] turns them into probabilities,
//! calibrated so that about [`TARGET_ROOT_ERROR_RATE`] of the user-facing
//! requests fail.

use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use rand::{Rng, SeedableRng};

use crate::attrs::{int, string};
use crate::dist::{GenRng, LogNormal, cumulative, mix64, weighted_index};
use crate::vocab::{self, Failure, Language, Param, ScopeKind};

/// Share of edge requests that should end in an error.
pub const TARGET_ROOT_ERROR_RATE: f64 = 0.03;

/// Key mixed into the seed for the topology's random stream.
const TOPOLOGY_STREAM: u64 = 0x746f_706f_6c6f_6779;

/// Microseconds, as nanoseconds.
const US: f64 = 1_000.0;
/// Milliseconds, as nanoseconds.
const MS: f64 = 1_000_000.0;

/// Where a service sits in the call graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Takes user traffic: the root of most traces.
    Edge,
    /// Business services called by the edge.
    UpperMid,
    /// Business services called by the upper mid-tier.
    LowerMid,
    /// Thin services over data stores, called by everyone above.
    Backend,
    /// Queue consumers: the root of their own traces.
    Worker,
}

impl Tier {
    /// `k8s.namespace.name` of the tier's services.
    fn k8s_namespace(self) -> &'static str {
        match self {
            Tier::Edge => "storefront",
            Tier::UpperMid | Tier::LowerMid => "commerce",
            Tier::Backend => "platform",
            Tier::Worker => "async",
        }
    }
}

/// RPC style of a service's operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/JSON.
    Http,
    /// gRPC.
    Grpc,
}

/// One instrumented service.
#[derive(Debug, Clone)]
pub struct Service {
    /// `service.name`.
    pub name: String,
    /// Position in the call graph.
    pub tier: Tier,
    /// Implementation language (SDK, scopes, exceptions).
    pub language: Language,
    /// Emits the stable HTTP conventions (`http.request.method`,
    /// `http.response.status_code`, `url.full`) rather than the old ones
    /// (`http.method`, `http.status_code`, `http.url`).
    pub stable_semconv: bool,
    /// How the service is called.
    pub protocol: Protocol,
    /// Address callers use (`server.address`).
    pub host: String,
    /// Port callers use.
    pub port: i64,
    /// Running pods, each with its resource.
    pub instances: Vec<Instance>,
    /// What the service does.
    pub operations: Vec<Operation>,
    /// Instrumentation scopes, indexed by [`ScopeKind::index`].
    pub scopes: Vec<InstrumentationScope>,
    /// Schema URL of the service's telemetry.
    pub schema_url: &'static str,
}

/// One pod of a service.
#[derive(Debug, Clone)]
pub struct Instance {
    /// Pod IP (`client.address` of its outgoing calls).
    pub ip: String,
    /// The OTLP resource of its spans.
    pub resource: Resource,
}

/// Something a service does when called (or, for workers, consumes).
#[derive(Debug, Clone)]
pub struct Operation {
    /// Name of the server (or consumer) span.
    pub span_name: String,
    /// How the operation is reached.
    pub endpoint: Endpoint,
    /// The id the operation is about (route parameter, app attribute).
    pub param: Param,
    /// Handler function name, for stack traces and `code.function`.
    pub function: String,
    /// Time spent in the handler itself, outside its calls.
    pub self_time: LogNormal,
    /// Relative weight of a bug here (see [`Topology::error_scale`]).
    pub error_weight: f64,
    /// Safe to retry.
    pub idempotent: bool,
    /// What the handler does, in order.
    pub steps: Vec<Step>,
}

impl Operation {
    /// An operation without a plan yet, with self time and bug weight drawn
    /// for its tier.
    #[allow(clippy::too_many_arguments)]
    fn new(rng: &mut GenRng, tier: Tier, span_name: String, endpoint: Endpoint, param: Param, function: String, idempotent: bool) -> Self {
        let median = match tier {
            Tier::Edge => 1.5 * MS,
            Tier::UpperMid | Tier::LowerMid | Tier::Worker => 0.8 * MS,
            Tier::Backend => 0.3 * MS,
        };
        Operation {
            span_name,
            endpoint,
            param,
            function,
            self_time: LogNormal::new(median * rng.random_range(0.3..3.0), rng.random_range(0.4..0.9)),
            error_weight: rng.random_range(0.1..0.5),
            idempotent,
            steps: Vec::new(),
        }
    }
}

/// How an operation is reached.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// An HTTP route.
    Http {
        /// Request method.
        method: &'static str,
        /// Route template, e.g. `/v1/cart/{cartId}`.
        route: String,
    },
    /// A gRPC method.
    Grpc {
        /// `rpc.service`, e.g. `shop.cart.v1.CartService`.
        service: String,
        /// `rpc.method`, e.g. `GetCart`.
        method: String,
    },
    /// A batch of messages from a topic.
    Consume {
        /// Index into [`Topology::topics`].
        topic: usize,
    },
}

/// One step of an operation's plan.
#[derive(Debug, Clone)]
pub enum Step {
    /// One call (maybe repeated, as an N+1 query loop).
    Call(Call),
    /// Calls started together; the step ends with the slowest.
    Parallel(Vec<Call>),
    /// A cache lookup and, on a miss, the calls that fill it.
    CacheAside {
        /// The cache read.
        lookup: Call,
        /// Probability of a miss.
        miss_ratio: f64,
        /// Calls made on a miss, in order.
        on_miss: Vec<Call>,
    },
}

impl Step {
    /// The calls of the step, in order.
    pub fn calls(&self) -> Vec<&Call> {
        match self {
            Step::Call(call) => vec![call],
            Step::Parallel(calls) => calls.iter().collect(),
            Step::CacheAside { lookup, on_miss, .. } => std::iter::once(lookup).chain(on_miss).collect(),
        }
    }
}

/// A call an operation makes.
#[derive(Debug, Clone)]
pub struct Call {
    /// What is called.
    pub target: Target,
    /// Probability the call happens at all.
    pub probability: f64,
    /// The call is made 1..=max_repeat times in a row.
    pub max_repeat: u32,
    /// Probability a failure of the call fails the caller.
    pub propagate: f64,
    /// Probability a failed call is retried once.
    pub retry: f64,
}

/// What a call reaches.
#[derive(Debug, Clone)]
pub enum Target {
    /// Another service's operation (client span + its server span).
    Service {
        /// Index into [`Topology::services`].
        service: usize,
        /// Index into that service's operations.
        operation: usize,
    },
    /// A data store query (client span).
    Store {
        /// Index into [`Topology::stores`].
        store: usize,
        /// Index into the store's queries.
        query: usize,
    },
    /// A message published to a topic (producer span).
    Publish {
        /// Index into [`Topology::topics`].
        topic: usize,
    },
    /// In-process work (internal span).
    Internal {
        /// Span name.
        name: String,
        /// `code.function`.
        function: String,
        /// Duration.
        duration: LogNormal,
    },
}

/// Kinds of data stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// PostgreSQL.
    Postgres,
    /// MySQL.
    Mysql,
    /// MongoDB.
    Mongo,
    /// Redis.
    Redis,
    /// Memcached.
    Memcached,
}

impl StoreKind {
    /// `db.system`.
    pub fn db_system(self) -> &'static str {
        match self {
            StoreKind::Postgres => "postgresql",
            StoreKind::Mysql => "mysql",
            StoreKind::Mongo => "mongodb",
            StoreKind::Redis => "redis",
            StoreKind::Memcached => "memcached",
        }
    }

    /// Instrumentation scope of the client library.
    pub fn scope_kind(self) -> ScopeKind {
        match self {
            StoreKind::Postgres | StoreKind::Mysql => ScopeKind::Sql,
            StoreKind::Mongo => ScopeKind::Mongo,
            StoreKind::Redis => ScopeKind::Redis,
            StoreKind::Memcached => ScopeKind::Memcached,
        }
    }

    /// What can go wrong with a query: a timeout, a conflict, no connection.
    pub fn failures(self) -> &'static [Failure] {
        match self {
            StoreKind::Postgres => &[Failure::DbTimeout, Failure::DbDeadlock, Failure::DbConnection],
            StoreKind::Mysql => &[Failure::MysqlTimeout, Failure::MysqlDeadlock, Failure::DbConnection],
            StoreKind::Mongo => &[Failure::MongoTimeout, Failure::MongoWriteConflict, Failure::DbConnection],
            StoreKind::Redis | StoreKind::Memcached => &[Failure::CacheTimeout],
        }
    }

    /// A cache (rather than a database).
    pub fn is_cache(self) -> bool {
        matches!(self, StoreKind::Redis | StoreKind::Memcached)
    }

    fn port(self) -> i64 {
        match self {
            StoreKind::Postgres => 5432,
            StoreKind::Mysql => 3306,
            StoreKind::Mongo => 27017,
            StoreKind::Redis => 6379,
            StoreKind::Memcached => 11211,
        }
    }
}

/// A database or cache, seen by its clients.
#[derive(Debug, Clone)]
pub struct Store {
    /// `peer.service`.
    pub name: String,
    /// What it is.
    pub kind: StoreKind,
    /// `server.address`.
    pub host: String,
    /// `server.port`.
    pub port: i64,
    /// `db.name` (database, keyspace index or empty).
    pub database: String,
    /// The queries its clients run.
    pub queries: Vec<Query>,
}

/// What a query does, to match it to operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryRole {
    /// Reads one row or key.
    Get,
    /// Reads many rows.
    List,
    /// Writes (insert, update, delete, set).
    Write,
}

/// One query shape.
#[derive(Debug, Clone)]
pub struct Query {
    /// Span name, e.g. `SELECT orders` or `GET`.
    pub span_name: String,
    /// `db.operation`.
    pub operation: &'static str,
    /// `db.sql.table` / `db.mongodb.collection`; empty for caches.
    pub table: String,
    /// `db.statement`; `{v}` is replaced by an id from the request.
    pub statement: String,
    /// What the query does.
    pub role: QueryRole,
    /// Latency.
    pub latency: LogNormal,
    /// Relative weight of a failure here.
    pub error_weight: f64,
}

/// A Kafka topic or RabbitMQ queue.
#[derive(Debug, Clone)]
pub struct Topic {
    /// `messaging.destination.name`.
    pub name: String,
    /// `messaging.system`: `kafka` or `rabbitmq`.
    pub system: &'static str,
    /// Broker address.
    pub host: String,
    /// Broker port.
    pub port: i64,
    /// Number of partitions (Kafka).
    pub partitions: u32,
    /// Largest batch a consumer takes.
    pub max_batch: usize,
    /// Consuming worker service.
    pub consumer: usize,
    /// Its consuming operation.
    pub consumer_operation: usize,
}

/// The generated world.
#[derive(Debug, Clone)]
pub struct Topology {
    /// Services; tiers in order: edge, upper mid, lower mid, backend, workers.
    pub services: Vec<Service>,
    /// Data stores.
    pub stores: Vec<Store>,
    /// Topics.
    pub topics: Vec<Topic>,
    /// Entry points of user traffic: (service, operation).
    pub entries: Vec<(usize, usize)>,
    /// Running totals of the entry points' weights.
    pub entry_weights: Vec<f64>,
    /// Multiplies every error weight into a probability.
    pub error_scale: f64,
}

impl Topology {
    /// Probability of an error origin of relative `weight`.
    pub fn error_probability(&self, weight: f64) -> f64 {
        (self.error_scale * weight).clamp(0.0, 0.5)
    }

    /// Builds the world of `services` services for `seed`.
    pub fn build(seed: u64, services: usize) -> Topology {
        let mut rng = GenRng::seed_from_u64(mix64(seed ^ TOPOLOGY_STREAM));
        let mut builder = Builder::new(&mut rng, services);
        builder.add_stores();
        builder.add_operations();
        builder.add_topics();
        builder.add_plans();
        builder.add_producers();
        let mut topology = builder.finish();
        topology.calibrate_errors(TARGET_ROOT_ERROR_RATE);
        topology
    }

    /// Chooses [`Topology::error_scale`] so that the expected share of failed
    /// traces is `target` (bisection over the acyclic call graph).
    fn calibrate_errors(&mut self, target: f64) {
        let (mut low, mut high) = (0.0, 1.0);
        for _ in 0..60 {
            self.error_scale = (low + high) / 2.0;
            if self.expected_root_error_rate() < target {
                low = self.error_scale;
            } else {
                high = self.error_scale;
            }
        }
    }

    /// Expected share of failed traces (user requests and consumer batches)
    /// at the current error scale.
    pub fn expected_root_error_rate(&self) -> f64 {
        let mut memo: Vec<Vec<Option<f64>>> = self.services.iter().map(|s| vec![None; s.operations.len()]).collect();
        let (mut failed, mut total) = (0.0, 0.0);
        for ((service, operation), weight) in self.root_weights() {
            failed += weight * self.operation_failure(service, operation, &mut memo);
            total += weight;
        }
        failed / total.max(f64::MIN_POSITIVE)
    }

    /// Every kind of trace root with its expected count per user request:
    /// the entry points, and the workers' batches of published messages.
    fn root_weights(&self) -> Vec<((usize, usize), f64)> {
        let total = self.entry_weights.last().copied().unwrap_or(0.0).max(f64::MIN_POSITIVE);
        let mut previous = 0.0;
        let mut roots: Vec<((usize, usize), f64)> = self
            .entries
            .iter()
            .zip(&self.entry_weights)
            .map(|(&entry, &cum)| {
                let weight = (cum - previous) / total;
                previous = cum;
                (entry, weight)
            })
            .collect();
        let visits = expected_visits(&self.services, &roots);
        let mut published = vec![0.0; self.topics.len()];
        for (service, s) in self.services.iter().enumerate() {
            for (operation, op) in s.operations.iter().enumerate() {
                for call in op.steps.iter().flat_map(Step::calls) {
                    if let Target::Publish { topic } = call.target {
                        published[topic] += visits[service][operation] * call.probability;
                    }
                }
            }
        }
        for (topic, t) in self.topics.iter().enumerate() {
            roots.push(((t.consumer, t.consumer_operation), published[topic] * 2.0 / (1.0 + t.max_batch as f64)));
        }
        roots
    }

    fn operation_failure(&self, service: usize, operation: usize, memo: &mut Vec<Vec<Option<f64>>>) -> f64 {
        if let Some(p) = memo[service][operation] {
            return p;
        }
        let op = &self.services[service].operations[operation];
        let mut ok = 1.0 - self.error_probability(op.error_weight);
        for step in &op.steps {
            ok *= 1.0 - self.step_failure(step, memo);
        }
        memo[service][operation] = Some(1.0 - ok);
        1.0 - ok
    }

    fn step_failure(&self, step: &Step, memo: &mut Vec<Vec<Option<f64>>>) -> f64 {
        match step {
            Step::Call(call) => self.call_failure(call, memo),
            Step::Parallel(calls) => 1.0 - calls.iter().map(|c| 1.0 - self.call_failure(c, memo)).product::<f64>(),
            Step::CacheAside { lookup, miss_ratio, on_miss } => {
                let miss_ok: f64 = on_miss.iter().map(|c| 1.0 - self.call_failure(c, memo)).product();
                1.0 - (1.0 - self.call_failure(lookup, memo)) * (1.0 - miss_ratio * (1.0 - miss_ok))
            }
        }
    }

    fn call_failure(&self, call: &Call, memo: &mut Vec<Vec<Option<f64>>>) -> f64 {
        let fails = match &call.target {
            Target::Service { service, operation } => self.operation_failure(*service, *operation, memo),
            Target::Store { store, query } => self.error_probability(self.stores[*store].queries[*query].error_weight),
            Target::Publish { .. } => self.error_probability(PUBLISH_ERROR_WEIGHT),
            Target::Internal { .. } => 0.0,
        };
        let after_retry = fails * (1.0 - call.retry * (1.0 - fails));
        let per_attempt = call.propagate * after_retry;
        let mean_repeat = (1.0 + call.max_repeat as f64) / 2.0;
        call.probability * (1.0 - (1.0 - per_attempt).powf(mean_repeat))
    }
}

/// Expected executions of every operation per user request, given the
/// entry points' weights. Services are in tier order and calls only go down,
/// so one pass in order suffices.
fn expected_visits(services: &[Service], entries: &[((usize, usize), f64)]) -> Vec<Vec<f64>> {
    let mut visits: Vec<Vec<f64>> = services.iter().map(|s| vec![0.0; s.operations.len()]).collect();
    let total: f64 = entries.iter().map(|(_, w)| w).sum();
    for &((service, operation), weight) in entries {
        visits[service][operation] += weight / total;
    }
    for service in 0..services.len() {
        for operation in 0..services[service].operations.len() {
            let v = visits[service][operation];
            for call in services[service].operations[operation].steps.iter().flat_map(Step::calls) {
                if let Target::Service { service: callee, operation: callee_op } = call.target {
                    visits[callee][callee_op] += v * call.probability * (1.0 + call.max_repeat as f64) / 2.0;
                }
            }
        }
    }
    visits
}

/// Fewest expected calls of a service (or publishes to a topic) per user
/// request: rarer ones get an extra caller, so small datasets show every service.
const MIN_VISITS: f64 = 0.03;

/// Relative weight of a failed publish.
pub const PUBLISH_ERROR_WEIGHT: f64 = 0.5;

/// Draws the topology piece by piece.
struct Builder<'a> {
    rng: &'a mut GenRng,
    services: Vec<Service>,
    stores: Vec<Store>,
    /// Stores owned by each service.
    owned_stores: Vec<Vec<usize>>,
    /// Shared caches: session, rate limit, catalog.
    shared_caches: Vec<usize>,
    topics: Vec<Topic>,
    /// Edge operations' weights.
    entry_weights: Vec<((usize, usize), f64)>,
}

/// `name` from `pool`, or `pool[i % len]-k` once the pool is used up.
fn pooled_name(pool: &[&str], i: usize) -> String {
    let base = pool[i % pool.len()];
    match i / pool.len() {
        0 => base.to_owned(),
        k => format!("{base}-{}", k + 1),
    }
}

/// Lowercase alphanumerics Kubernetes uses in generated names.
const K8S_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn k8s_suffix(rng: &mut GenRng, len: usize) -> String {
    (0..len).map(|_| K8S_ALPHABET[rng.random_range(0..K8S_ALPHABET.len())] as char).collect()
}

fn hex(rng: &mut GenRng, bytes: usize) -> String {
    (0..bytes).map(|_| format!("{:02x}", rng.random::<u8>())).collect()
}

fn uuid(rng: &mut GenRng) -> String {
    let h = hex(rng, 16);
    format!("{}-{}-4{}-a{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}

/// `Some(x)` with probability `p`.
fn chance(rng: &mut GenRng, p: f64) -> bool {
    rng.random_bool(p.clamp(0.0, 1.0))
}

/// A random element of a non-empty slice.
fn pick<'s, T>(rng: &mut GenRng, items: &'s [T]) -> &'s T {
    &items[rng.random_range(0..items.len())]
}

impl<'a> Builder<'a> {
    fn new(rng: &'a mut GenRng, count: usize) -> Self {
        // Tier sizes: ~10% edge, ~15% workers, ~25% backend, the rest mid-tier.
        let edge = ((count as f64 * 0.10).round() as usize).max(1);
        let workers = ((count as f64 * 0.15).round() as usize).max(1);
        let backend = ((count as f64 * 0.25).round() as usize).max(1);
        let mid = count - edge - workers - backend;
        let upper = mid.div_ceil(2);
        let mut tiers = Vec::with_capacity(count);
        tiers.extend((0..edge).map(|i| (Tier::Edge, pooled_name(vocab::EDGE_SERVICES, i))));
        tiers.extend((0..mid).map(|i| (if i < upper { Tier::UpperMid } else { Tier::LowerMid }, pooled_name(vocab::MID_SERVICES, i))));
        tiers.extend((0..backend).map(|i| (Tier::Backend, pooled_name(vocab::BACKEND_SERVICES, i))));
        tiers.extend((0..workers).map(|i| (Tier::Worker, pooled_name(vocab::WORKER_SERVICES, i))));

        let nodes: Vec<(String, &str)> = (0..(count / 3 + 4))
            .map(|i| {
                let zone = ["us-east-1a", "us-east-1b", "us-east-1c"][i % 3];
                (format!("ip-10-0-{}-{}.ec2.internal", 16 * (i % 3) + rng.random_range(0..16), rng.random_range(2..255)), zone)
            })
            .collect();

        let services = tiers
            .into_iter()
            .map(|(tier, name)| {
                let language = match tier {
                    Tier::Edge => *pick(rng, &[Language::Node, Language::Node, Language::Go, Language::Java]),
                    _ => *pick(rng, &[Language::Java, Language::Java, Language::Go, Language::Go, Language::Python, Language::Node]),
                };
                let protocol = match tier {
                    Tier::Edge | Tier::Worker => Protocol::Http,
                    _ if chance(rng, 0.45) => Protocol::Grpc,
                    _ => Protocol::Http,
                };
                let stable_semconv = chance(rng, 0.6);
                let host = match tier {
                    Tier::Edge => format!("{}.shop.example.com", name.split('-').next().unwrap_or(&name)),
                    _ => format!("{name}.{}.svc.cluster.local", tier.k8s_namespace()),
                };
                let port = match (tier, protocol) {
                    (Tier::Edge, _) => 443,
                    (_, Protocol::Grpc) => 50051,
                    (_, Protocol::Http) => 8080,
                };
                let pods = match tier {
                    Tier::Edge => rng.random_range(3..=8),
                    Tier::UpperMid | Tier::LowerMid => rng.random_range(2..=6),
                    Tier::Backend | Tier::Worker => rng.random_range(2..=4),
                };
                let version = format!("{}.{}.{}", rng.random_range(1..4), rng.random_range(0..30), rng.random_range(0..12));
                let replicaset = format!("{name}-{}", k8s_suffix(rng, 10));
                let instances = (0..pods)
                    .map(|_| {
                        let (node, zone) = pick(rng, &nodes).clone();
                        let pod = format!("{replicaset}-{}", k8s_suffix(rng, 5));
                        let ip = format!("10.1.{}.{}", rng.random_range(0..64), rng.random_range(2..255));
                        let (runtime, runtime_version) = language.runtime();
                        let mut attributes = vec![
                            string("service.name", &name),
                            string("service.namespace", "shop"),
                            string("service.version", &version),
                            string("service.instance.id", uuid(rng)),
                            string("deployment.environment", "production"),
                            string("telemetry.sdk.name", "opentelemetry"),
                            string("telemetry.sdk.language", language.sdk_language()),
                            string("telemetry.sdk.version", language.sdk_version()),
                            string("process.runtime.name", runtime),
                            string("process.runtime.version", runtime_version),
                            int("process.pid", if language == Language::Go { 1 } else { rng.random_range(6..400) }),
                            string("host.name", &pod),
                            string("host.arch", "amd64"),
                            string("os.type", "linux"),
                            string("container.id", hex(rng, 32)),
                            string("k8s.cluster.name", "prod-us-east-1"),
                            string("k8s.namespace.name", tier.k8s_namespace()),
                            string("k8s.deployment.name", &name),
                            string("k8s.replicaset.name", &replicaset),
                            string("k8s.pod.name", &pod),
                            string("k8s.pod.uid", uuid(rng)),
                            string("k8s.container.name", &name),
                            string("k8s.node.name", &node),
                            string("cloud.provider", "aws"),
                            string("cloud.platform", "aws_eks"),
                            string("cloud.region", "us-east-1"),
                            string("cloud.availability_zone", zone),
                        ];
                        if language == Language::Java {
                            attributes.push(string("telemetry.distro.name", "opentelemetry-java-instrumentation"));
                            attributes.push(string("telemetry.distro.version", "2.8.0"));
                        }
                        Instance { ip, resource: Resource { attributes, ..Default::default() } }
                    })
                    .collect();
                let module = name.replace('-', "");
                let manual_scope = match language {
                    Language::Java => format!("com.example.shop.{module}"),
                    Language::Go => format!("example.com/shop/{module}"),
                    Language::Python => module.clone(),
                    Language::Node => format!("@shop/{name}"),
                };
                let scopes = ScopeKind::ALL
                    .iter()
                    .map(|&kind| {
                        let (scope_name, scope_version) = vocab::scope(language, kind);
                        let scope_name = if kind == ScopeKind::Manual { manual_scope.clone() } else { scope_name.to_owned() };
                        InstrumentationScope { name: scope_name, version: scope_version.to_owned(), ..Default::default() }
                    })
                    .collect();
                let schema_url =
                    if stable_semconv { "https://opentelemetry.io/schemas/1.26.0" } else { "https://opentelemetry.io/schemas/1.20.0" };
                Service { name, tier, language, stable_semconv, protocol, host, port, instances, operations: Vec::new(), scopes, schema_url }
            })
            .collect::<Vec<_>>();
        let count = services.len();
        Builder {
            rng,
            services,
            stores: Vec::new(),
            owned_stores: vec![Vec::new(); count],
            shared_caches: Vec::new(),
            topics: Vec::new(),
            entry_weights: Vec::new(),
        }
    }

    fn tier_services(&self, tiers: &[Tier]) -> Vec<usize> {
        (0..self.services.len()).filter(|&i| tiers.contains(&self.services[i].tier)).collect()
    }

    /// Databases and caches: one per owner, plus the shared caches.
    fn add_stores(&mut self) {
        for (i, shared) in vocab::SHARED_CACHES.iter().enumerate() {
            let kind = if i == 2 { StoreKind::Memcached } else { StoreKind::Redis };
            let store = self.new_store(shared, kind, &shared.replace("-cache", ""));
            self.shared_caches.push(store);
        }
        for service in self.tier_services(&[Tier::UpperMid, Tier::LowerMid, Tier::Backend, Tier::Worker]) {
            let name = self.services[service].name.clone();
            let noun = name.trim_end_matches("-store").trim_end_matches("-service").trim_end_matches("-worker").replace('-', "_");
            let database_probability = match self.services[service].tier {
                Tier::Backend => 0.85,
                Tier::Worker => 0.5,
                _ => 0.6,
            };
            if chance(self.rng, database_probability) {
                let kind = match self.rng.random_range(0..20) {
                    0..=2 => StoreKind::Mongo,
                    3..=7 => StoreKind::Mysql,
                    _ => StoreKind::Postgres,
                };
                let store = self.new_store(&format!("{name}-db"), kind, &noun);
                self.owned_stores[service].push(store);
            }
            if chance(self.rng, 0.3) {
                let store = self.new_store(&format!("{name}-redis"), StoreKind::Redis, &noun);
                self.owned_stores[service].push(store);
            }
        }
    }

    fn new_store(&mut self, name: &str, kind: StoreKind, noun: &str) -> usize {
        let rng = &mut *self.rng;
        let mut queries = Vec::new();
        let database = match kind {
            StoreKind::Redis => rng.random_range(0..4).to_string(),
            StoreKind::Memcached => String::new(),
            _ => noun.to_owned(),
        };
        match kind {
            StoreKind::Postgres | StoreKind::Mysql => {
                // Some legacy code inlines literals: high-cardinality statements.
                let inline = chance(rng, 0.2);
                let (p1, p2) = match (kind, inline) {
                    (_, true) => ("{v}", "'pending'"),
                    (StoreKind::Postgres, false) => ("$1", "$2"),
                    _ => ("?", "?"),
                };
                let tables = [format!("{noun}s"), format!("{noun}_items"), format!("{noun}_events"), "outbox".to_owned()];
                let table_count = rng.random_range(2..=tables.len());
                for table in &tables[..table_count] {
                    let columns = "id, user_id, status, payload, created_at, updated_at";
                    let sql = [
                        ("SELECT", format!("SELECT {columns} FROM {table} WHERE id = {p1}"), QueryRole::Get, 0.8 * MS, 0.6),
                        (
                            "SELECT",
                            format!("SELECT {columns} FROM {table} WHERE user_id = {p1} ORDER BY created_at DESC LIMIT 50"),
                            QueryRole::List,
                            3.0 * MS,
                            0.9,
                        ),
                        ("INSERT", format!("INSERT INTO {table} ({columns}) VALUES ({p1}, {p2}, {p2}, {p2}, now(), now())"), QueryRole::Write, 1.5 * MS, 0.7),
                        ("UPDATE", format!("UPDATE {table} SET status = {p2}, updated_at = now() WHERE id = {p1}"), QueryRole::Write, 2.0 * MS, 0.8),
                        ("DELETE", format!("DELETE FROM {table} WHERE id = {p1}"), QueryRole::Write, 1.2 * MS, 0.7),
                        ("SELECT", format!("SELECT count(*) FROM {table} WHERE status = {p2}"), QueryRole::List, 12.0 * MS, 1.2),
                    ];
                    for (operation, statement, role, median, sigma) in sql {
                        let latency = LogNormal::new(median * rng.random_range(0.5..2.0), sigma);
                        let span_name = format!("{operation} {table}");
                        queries.push(Query { span_name, operation, table: table.clone(), statement, role, latency, error_weight: 1.0 });
                    }
                }
            }
            StoreKind::Mongo => {
                let collection = format!("{noun}s");
                let mongo = [
                    ("find", format!(r#"{{"find": "{collection}", "filter": {{"_id": "?"}}, "limit": 1}}"#), QueryRole::Get, 0.9 * MS),
                    ("find", format!(r#"{{"find": "{collection}", "filter": {{"userId": "?"}}, "sort": {{"createdAt": -1}}}}"#), QueryRole::List, 4.0 * MS),
                    ("insert", format!(r#"{{"insert": "{collection}", "documents": "?"}}"#), QueryRole::Write, 1.5 * MS),
                    ("update", format!(r#"{{"update": "{collection}", "updates": [{{"q": {{"_id": "?"}}, "u": "?"}}]}}"#), QueryRole::Write, 1.8 * MS),
                    ("aggregate", format!(r#"{{"aggregate": "{collection}", "pipeline": [{{"$match": "?"}}, {{"$group": "?"}}]}}"#), QueryRole::List, 15.0 * MS),
                ];
                for (operation, statement, role, median) in mongo {
                    let latency = LogNormal::new(median * rng.random_range(0.5..2.0), 0.8);
                    let span_name = format!("{operation} {collection}");
                    queries.push(Query { span_name, operation, table: collection.clone(), statement, role, latency, error_weight: 0.8 });
                }
            }
            StoreKind::Redis => {
                let redis = [
                    ("GET", format!("GET {noun}:{{v}}"), QueryRole::Get),
                    ("HGETALL", format!("HGETALL {noun}:{{v}}"), QueryRole::Get),
                    ("MGET", format!("MGET {noun}:{{v}} {noun}:{{v}}:meta"), QueryRole::List),
                    ("SET", format!("SET {noun}:{{v}} ? EX 300"), QueryRole::Write),
                    ("DEL", format!("DEL {noun}:{{v}}"), QueryRole::Write),
                    ("INCR", format!("INCR {noun}:count:{{v}}"), QueryRole::Write),
                ];
                for (operation, statement, role) in redis {
                    let latency = LogNormal::new(rng.random_range(120.0..400.0) * US, 0.5);
                    queries.push(Query { span_name: operation.to_owned(), operation, table: String::new(), statement, role, latency, error_weight: 0.4 });
                }
            }
            StoreKind::Memcached => {
                let memcached = [
                    ("get", format!("get {noun}:{{v}}"), QueryRole::Get),
                    ("get_multi", format!("get_multi {noun}:{{v}} {noun}:{{v}}:meta"), QueryRole::List),
                    ("set", format!("set {noun}:{{v}} 0 300"), QueryRole::Write),
                ];
                for (operation, statement, role) in memcached {
                    let latency = LogNormal::new(rng.random_range(80.0..250.0) * US, 0.4);
                    queries.push(Query { span_name: operation.to_owned(), operation, table: String::new(), statement, role, latency, error_weight: 0.3 });
                }
            }
        }
        let host = format!("{name}.data.svc.cluster.local");
        self.stores.push(Store { name: name.to_owned(), kind, host, port: kind.port(), database, queries });
        self.stores.len() - 1
    }

    /// One topic per worker, with the worker's consuming operation.
    fn add_topics(&mut self) {
        let workers = self.tier_services(&[Tier::Worker]);
        for (i, &consumer) in workers.iter().enumerate() {
            let name = pooled_name(vocab::TOPICS, i);
            let rabbit = i % 4 == 1;
            let (system, host, port, max_batch) = if rabbit {
                ("rabbitmq", "rabbitmq.data.svc.cluster.local".to_owned(), 5672, 1)
            } else {
                ("kafka", format!("kafka-{}.kafka.data.svc.cluster.local", i % 3), 9092, self.rng.random_range(3..=10))
            };
            let partitions = if rabbit { 1 } else { *pick(self.rng, &[6, 12, 24]) };
            let topic = self.topics.len();
            let consumer_operation = self.services[consumer].operations.len();
            let function = vocab::camel_case(&format!("handle-{name}"));
            let operation = Operation::new(self.rng, Tier::Worker, format!("{name} process"), Endpoint::Consume { topic }, Param::Order, function, false);
            self.services[consumer].operations.push(operation);
            self.topics.push(Topic { name, system, host, port, partitions, max_batch, consumer, consumer_operation });
        }
    }

    fn visits(&self) -> Vec<Vec<f64>> {
        expected_visits(&self.services, &self.entry_weights)
    }

    /// 1–3 producers per topic: mid-tier operations drawn by how often they
    /// run, writes preferred (and never the backend, which workers call: a
    /// consumer must not feed its own queues). A topic published less than
    /// [`MIN_VISITS`] times per request gets one more, certain, producer.
    fn add_producers(&mut self) {
        let visits = self.visits();
        let mid = self.tier_services(&[Tier::UpperMid, Tier::LowerMid]);
        let (candidates, weights) = self.by_visits(&mid, &visits);
        if candidates.is_empty() {
            return;
        }
        for topic in 0..self.topics.len() {
            let mut published = 0.0;
            for _ in 0..self.rng.random_range(1..=3) {
                let (service, operation) = candidates[weighted_index(self.rng, &weights)];
                // Reads publish now and then (clickstream, cache warming); writes almost always.
                let probability = if self.services[service].operations[operation].idempotent { 0.2 } else { 0.95 };
                if self.add_publish(service, operation, topic, probability) {
                    published += visits[service][operation] * probability;
                }
            }
            if published < MIN_VISITS {
                let (service, operation) = candidates[weighted_index(self.rng, &weights)];
                self.add_publish(service, operation, topic, 1.0);
            }
        }
    }

    /// Makes `operation` publish to `topic` (once); whether it was added.
    fn add_publish(&mut self, service: usize, operation: usize, topic: usize, probability: f64) -> bool {
        let op = &mut self.services[service].operations[operation];
        let already = op.steps.iter().flat_map(Step::calls).any(|c| matches!(c.target, Target::Publish { topic: t } if t == topic));
        if !already {
            op.steps.push(Step::Call(Call { target: Target::Publish { topic }, probability, max_repeat: 1, propagate: 0.8, retry: 0.3 }));
        }
        !already
    }

    /// Endpoints of every service (plans come later, once all exist).
    fn add_operations(&mut self) {
        for service in 0..self.services.len() {
            let s = &self.services[service];
            let (tier, protocol, name) = (s.tier, s.protocol, s.name.clone());
            let mut operations = Vec::new();
            let new_op = |rng: &mut GenRng, span_name: String, endpoint: Endpoint, param: Param, function: String, idempotent: bool| {
                Operation::new(rng, tier, span_name, endpoint, param, function, idempotent)
            };
            match tier {
                Tier::Edge => {
                    // Always the home page and health check, then a random subset of routes.
                    let count = self.rng.random_range(5..=10).min(vocab::EDGE_ROUTES.len());
                    let mut chosen: Vec<usize> = (1..vocab::EDGE_ROUTES.len()).collect();
                    for i in 0..chosen.len() {
                        let j = self.rng.random_range(i..chosen.len());
                        chosen.swap(i, j);
                    }
                    chosen.truncate(count - 1);
                    chosen.sort_unstable();
                    chosen.insert(0, 0);
                    for (rank, &route) in chosen.iter().enumerate() {
                        let (method, path, param) = vocab::EDGE_ROUTES[route];
                        let function = vocab::camel_case(&format!("{}-{}", method.to_lowercase(), path.trim_matches('/').split('/').next().unwrap_or("")));
                        let function = if function.len() <= 3 { "index".to_owned() } else { function };
                        let endpoint = Endpoint::Http { method, route: path.to_owned() };
                        operations.push(new_op(self.rng, format!("{method} {path}"), endpoint, param, function, method == "GET"));
                        // Zipf-like popularity by rank, jittered.
                        let weight = self.rng.random_range(0.5..1.5) / (rank as f64 + 1.0).powf(0.9);
                        self.entry_weights.push(((service, operations.len() - 1), weight));
                    }
                    let health = Endpoint::Http { method: "GET", route: "/healthz".to_owned() };
                    operations.push(new_op(self.rng, "GET /healthz".to_owned(), health, Param::None, "healthz".to_owned(), true));
                    self.entry_weights.push(((service, operations.len() - 1), 0.05));
                }
                // Workers' operations come with their topics.
                Tier::Worker => {}
                Tier::UpperMid | Tier::LowerMid | Tier::Backend => {
                    let param = Param::for_service(&name);
                    let resource = name.trim_end_matches("-store").trim_end_matches("-service");
                    let pascal = vocab::pascal_case(resource);
                    // (HTTP method, route suffix, verb, idempotent)
                    const TEMPLATES: [(&str, &str, &str, bool); 8] = [
                        ("GET", "/{p}", "get", true),
                        ("GET", "", "list", true),
                        ("POST", "", "create", false),
                        ("PUT", "/{p}", "update", false),
                        ("DELETE", "/{p}", "delete", false),
                        ("POST", "/batch", "batchGet", true),
                        ("GET", "/search", "search", true),
                        ("POST", "/{p}/validate", "validate", true),
                    ];
                    let count = match tier {
                        Tier::Backend => self.rng.random_range(2..=4),
                        _ => self.rng.random_range(3..=6),
                    };
                    let mut chosen: Vec<usize> = vec![0, 1];
                    while chosen.len() < count {
                        let t = self.rng.random_range(2..TEMPLATES.len());
                        if !chosen.contains(&t) {
                            chosen.push(t);
                        }
                    }
                    chosen.sort_unstable();
                    for t in chosen {
                        let (method, suffix, verb, idempotent) = TEMPLATES[t];
                        let suffix = suffix.replace("{p}", param.placeholder());
                        let function = format!("{verb}{pascal}");
                        let (span_name, endpoint) = match protocol {
                            Protocol::Http => {
                                let route = format!("/v1/{resource}{suffix}");
                                (format!("{method} {route}"), Endpoint::Http { method, route })
                            }
                            Protocol::Grpc => {
                                let rpc_service = format!("shop.{}.v1.{pascal}Service", resource.replace('-', ""));
                                let plural = if verb == "list" || verb == "batchGet" || verb == "search" { "s" } else { "" };
                                let method = format!("{}{pascal}{plural}", vocab::pascal_case(verb));
                                (format!("{rpc_service}/{method}"), Endpoint::Grpc { service: rpc_service, method })
                            }
                        };
                        operations.push(new_op(self.rng, span_name, endpoint, param, function, idempotent));
                    }
                }
            }
            self.services[service].operations = operations;
        }
    }

    /// All operations of `services`, as call targets.
    fn operations_of(&self, services: &[usize]) -> Vec<(usize, usize)> {
        services.iter().flat_map(|&s| (0..self.services[s].operations.len()).map(move |o| (s, o))).collect()
    }

    /// A call to one of `candidates`, preferring operations as idempotent as the caller.
    fn service_call(&mut self, candidates: &[(usize, usize)], caller_idempotent: bool) -> Call {
        let mut target = *pick(self.rng, candidates);
        for _ in 0..3 {
            if self.services[target.0].operations[target.1].idempotent == caller_idempotent {
                break;
            }
            target = *pick(self.rng, candidates);
        }
        let idempotent = self.services[target.0].operations[target.1].idempotent;
        let optional = chance(self.rng, 0.25);
        Call {
            target: Target::Service { service: target.0, operation: target.1 },
            probability: if chance(self.rng, 0.7) { 1.0 } else { self.rng.random_range(0.3..0.95) },
            max_repeat: if chance(self.rng, 0.1) { self.rng.random_range(2..=4) } else { 1 },
            propagate: if optional { 0.1 } else { 0.95 },
            retry: if idempotent { 0.6 } else { 0.0 },
        }
    }

    /// Steps calling `count` targets among `candidates`, singly or fanned out in parallel.
    fn service_steps(&mut self, candidates: &[(usize, usize)], count: usize, caller_idempotent: bool) -> Vec<Step> {
        let mut steps = Vec::new();
        let mut remaining = count;
        while remaining > 0 && !candidates.is_empty() {
            let width = if remaining >= 2 && chance(self.rng, 0.4) { self.rng.random_range(2..=remaining.min(5)) } else { 1 };
            let calls: Vec<Call> = (0..width).map(|_| self.service_call(candidates, caller_idempotent)).collect();
            remaining -= width;
            steps.push(if width == 1 { Step::Call(calls.into_iter().next().expect("one call")) } else { Step::Parallel(calls) });
        }
        steps
    }

    /// A call to a query of `store` with `role`.
    fn store_call(&mut self, store: usize, role: QueryRole, max_repeat: u32) -> Call {
        let matching: Vec<usize> = (0..self.stores[store].queries.len()).filter(|&q| self.stores[store].queries[q].role == role).collect();
        let query = *pick(self.rng, &matching);
        Call { target: Target::Store { store, query }, probability: 1.0, max_repeat, propagate: 0.9, retry: 0.0 }
    }

    /// An internal span.
    fn internal_call(&mut self, service: usize, verb: &str) -> Call {
        let noun = vocab::pascal_case(&self.services[service].name);
        let function = format!("{verb}{noun}");
        let duration = LogNormal::new(self.rng.random_range(50.0..2000.0) * US, 0.7);
        let name = match self.services[service].language {
            Language::Java => format!("{noun}Service.{function}"),
            _ => function.clone(),
        };
        Call { target: Target::Internal { name, function, duration }, probability: 0.9, max_repeat: 1, propagate: 0.0, retry: 0.0 }
    }

    /// Data access steps of an operation: cache-aside reads, N+1 loops, writes.
    fn store_steps(&mut self, service: usize, idempotent: bool) -> Vec<Step> {
        let own = self.owned_stores[service].clone();
        let database = own.iter().copied().find(|&s| !self.stores[s].kind.is_cache());
        let cache = own.iter().copied().find(|&s| self.stores[s].kind.is_cache());
        let mut steps = Vec::new();
        match (idempotent, database, cache) {
            (true, Some(db), Some(cache)) if chance(self.rng, 0.7) => {
                let lookup = self.store_call(cache, QueryRole::Get, 1);
                let miss_ratio = self.rng.random_range(0.05..0.4);
                let on_miss = vec![self.store_call(db, QueryRole::Get, 1), self.store_call(cache, QueryRole::Write, 1)];
                steps.push(Step::CacheAside { lookup, miss_ratio, on_miss });
            }
            (true, Some(db), _) => {
                steps.push(Step::Call(self.store_call(db, QueryRole::List, 1)));
                if chance(self.rng, 0.25) {
                    // The N+1 pattern: one query per row of the list.
                    let rows = self.rng.random_range(3..=12);
                    steps.push(Step::Call(self.store_call(db, QueryRole::Get, rows)));
                }
            }
            (false, Some(db), _) => {
                steps.push(Step::Call(self.store_call(db, QueryRole::Get, 1)));
                let writes = self.rng.random_range(1..=3);
                steps.push(Step::Call(self.store_call(db, QueryRole::Write, writes)));
                if let Some(cache) = cache {
                    steps.push(Step::Call(self.store_call(cache, QueryRole::Write, 1)));
                }
            }
            (_, None, Some(cache)) => steps.push(Step::Call(self.store_call(cache, if idempotent { QueryRole::Get } else { QueryRole::Write }, 1))),
            (_, None, None) => {}
        }
        steps
    }

    /// The plan of every operation.
    fn add_plans(&mut self) {
        let upper = self.tier_services(&[Tier::UpperMid]);
        let lower = self.tier_services(&[Tier::LowerMid]);
        let backend = self.tier_services(&[Tier::Backend]);
        let upper_ops = self.operations_of(&upper);
        let below_upper = self.operations_of(&[lower.clone(), backend.clone()].concat());
        let backend_ops = self.operations_of(&backend);
        let edge_targets: Vec<(usize, usize)> = [upper_ops.clone(), upper_ops.clone(), upper_ops.clone(), self.operations_of(&lower)].concat();
        let auth = upper.iter().copied().find(|&s| self.services[s].name == "auth");
        let (session_cache, rate_limit_cache) = (self.shared_caches[0], self.shared_caches[1]);
        let catalog_cache = self.shared_caches[2];

        for service in 0..self.services.len() {
            for operation in 0..self.services[service].operations.len() {
                let op = &self.services[service].operations[operation];
                let (idempotent, tier) = (op.idempotent, self.services[service].tier);
                if op.span_name == "GET /healthz" {
                    continue;
                }
                let mut steps = Vec::new();
                match tier {
                    Tier::Edge => {
                        if self.services[service].name == "api-gateway" {
                            steps.push(Step::Call(self.store_call(rate_limit_cache, QueryRole::Write, 1)));
                        }
                        steps.push(Step::Call(self.store_call(session_cache, QueryRole::Get, 1)));
                        if let Some(auth) = auth {
                            let mut call = self.service_call(&self.operations_of(&[auth]), true);
                            call.probability = 0.9;
                            call.propagate = 1.0;
                            steps.push(Step::Call(call));
                        }
                        let count = self.rng.random_range(1..=5);
                        steps.extend(self.service_steps(&edge_targets, count, idempotent));
                        if self.services[service].name == "web-frontend" {
                            steps.push(Step::Call(self.internal_call(service, "render")));
                        }
                    }
                    Tier::UpperMid | Tier::LowerMid | Tier::Backend => {
                        if tier != Tier::Backend && chance(self.rng, 0.3) {
                            steps.push(Step::Call(self.internal_call(service, "validate")));
                        }
                        if self.services[service].name.contains("catalog") && idempotent {
                            steps.push(Step::Call(self.store_call(catalog_cache, QueryRole::Get, 1)));
                        }
                        steps.extend(self.store_steps(service, idempotent));
                        let (targets, count) = match tier {
                            Tier::UpperMid => (&below_upper, self.rng.random_range(0..=3)),
                            Tier::LowerMid => (&backend_ops, self.rng.random_range(0..=2)),
                            _ => (&backend_ops, 0),
                        };
                        steps.extend(self.service_steps(targets, count, idempotent));
                        if steps.is_empty() || chance(self.rng, 0.2) {
                            steps.push(Step::Call(self.internal_call(service, "serialize")));
                        }
                    }
                    Tier::Worker => {
                        steps.extend(self.store_steps(service, false));
                        let count = self.rng.random_range(1..=2);
                        steps.extend(self.service_steps(&backend_ops, count, false));
                        if steps.is_empty() {
                            steps.push(Step::Call(self.internal_call(service, "process")));
                        }
                    }
                }
                self.services[service].operations[operation].steps = steps;
            }
        }

        // Every service sees traffic: one called less than MIN_VISITS times
        // per request gets a call from an operation of the tier above.
        let edge = self.tier_services(&[Tier::Edge]);
        let mid = [upper.clone(), lower.clone()].concat();
        for (callees, callers) in [(&upper, &edge), (&lower, &upper), (&backend, &mid)] {
            let visits = self.visits();
            let (caller_ops, weights) = self.by_visits(callers, &visits);
            for &callee in callees.iter().filter(|&&s| visits[s].iter().sum::<f64>() < MIN_VISITS) {
                let (s, o) = caller_ops[weighted_index(self.rng, &weights)];
                let mut call = self.service_call(&self.operations_of(&[callee]), self.services[s].operations[o].idempotent);
                call.probability = 1.0;
                self.services[s].operations[o].steps.push(Step::Call(call));
            }
        }
    }

    /// The operations of `services` that run, and the running totals of how
    /// often they do (for [`weighted_index`]).
    fn by_visits(&self, services: &[usize], visits: &[Vec<f64>]) -> (Vec<(usize, usize)>, Vec<f64>) {
        let ops: Vec<(usize, usize)> = self.operations_of(services).into_iter().filter(|&(s, o)| visits[s][o] > 0.0).collect();
        let weights = cumulative(ops.iter().map(|&(s, o)| visits[s][o]));
        (ops, weights)
    }

    fn finish(self) -> Topology {
        let entries = self.entry_weights.iter().map(|(e, _)| *e).collect();
        let entry_weights = cumulative(self.entry_weights.iter().map(|(_, w)| *w));
        Topology { services: self.services, stores: self.stores, topics: self.topics, entries, entry_weights, error_scale: 0.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_sizes_and_acyclic_calls() {
        for count in [5, 20, 30, 50, 120] {
            let t = Topology::build(1, count);
            assert_eq!(t.services.len(), count);
            let names: std::collections::HashSet<_> = t.services.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(names.len(), count, "service names are unique");
            for tier in [Tier::Edge, Tier::UpperMid, Tier::LowerMid, Tier::Backend, Tier::Worker] {
                assert!(t.services.iter().any(|s| s.tier == tier), "{count} services: no {tier:?}");
            }
            let rank = |tier: Tier| match tier {
                Tier::Edge => 0,
                Tier::UpperMid => 1,
                Tier::LowerMid => 2,
                Tier::Backend => 3,
                Tier::Worker => 2,
            };
            for s in &t.services {
                assert!(!s.instances.is_empty());
                for op in &s.operations {
                    for call in op.steps.iter().flat_map(Step::calls) {
                        if let Target::Service { service, .. } = call.target {
                            assert!(rank(t.services[service].tier) > rank(s.tier), "{} calls {}", s.name, t.services[service].name);
                        }
                    }
                }
            }
            assert!(!t.topics.is_empty());
            let error_rate = t.expected_root_error_rate();
            assert!((error_rate - TARGET_ROOT_ERROR_RATE).abs() < 0.001, "calibrated to {error_rate}");
            let pod = &t.services[0].instances[0].resource;
            assert!(pod.attributes.iter().any(|kv| kv.key == "k8s.pod.name"));
        }
    }

    #[test]
    fn same_seed_same_world() {
        let a = Topology::build(9, 30);
        let b = Topology::build(9, 30);
        let c = Topology::build(10, 30);
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        assert_ne!(format!("{a:?}"), format!("{c:?}"));
    }
}
