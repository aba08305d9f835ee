//! The vocabulary of the generated world: service, table, topic and user
//! agent names, instrumentation scopes per language, and the exceptions
//! each language's libraries throw, with their stack traces.

/// Edge services (take user traffic), in the order they are used.
pub const EDGE_SERVICES: &[&str] = &["web-frontend", "api-gateway", "mobile-bff", "partner-api", "admin-portal", "graphql-gateway"];

/// Mid-tier business services, in the order they are used.
pub const MID_SERVICES: &[&str] = &[
    "auth", "cart", "catalog", "checkout", "order", "payment", "pricing", "inventory", "recommendation", "shipping",
    "user-profile", "search", "review", "ads", "currency", "fraud-detection", "loyalty", "promotion", "tax", "wishlist",
    "fulfillment", "returns", "subscription", "quote", "geo", "media", "notification", "customer-support",
    "feature-flags", "experimentation",
];

/// Backend services (thin layers over data stores and third parties).
pub const BACKEND_SERVICES: &[&str] = &[
    "product-store", "user-store", "order-store", "ledger", "rate-limiter", "token-service", "config-service",
    "image-resizer", "email-sender", "sms-gateway", "address-validator", "session-store", "blob-proxy",
    "pdf-renderer", "id-generator",
];

/// Queue consumers.
pub const WORKER_SERVICES: &[&str] = &[
    "order-events-worker", "email-worker", "search-indexer", "analytics-ingester", "inventory-sync",
    "billing-worker", "webhook-dispatcher", "audit-logger", "report-builder", "cache-warmer",
];

/// Topics and queues, in the order they are used.
pub const TOPICS: &[&str] = &[
    "orders", "emails", "search-updates", "clickstream", "inventory-updates", "payments", "webhooks", "audit",
    "reports", "cache-invalidations", "shipments", "refunds",
];

/// Shared caches any service may use.
pub const SHARED_CACHES: &[&str] = &["session-cache", "rate-limit-cache", "catalog-cache"];

/// Routes of the edge services: method, route, parameter.
pub const EDGE_ROUTES: &[(&str, &str, Param)] = &[
    ("GET", "/", Param::None),
    ("GET", "/products", Param::None),
    ("GET", "/products/{productId}", Param::Product),
    ("GET", "/cart", Param::None),
    ("POST", "/cart/items", Param::None),
    ("DELETE", "/cart/items/{productId}", Param::Product),
    ("POST", "/checkout", Param::None),
    ("GET", "/orders", Param::None),
    ("GET", "/orders/{orderId}", Param::Order),
    ("GET", "/account", Param::None),
    ("PUT", "/account", Param::None),
    ("GET", "/search", Param::None),
    ("POST", "/login", Param::None),
    ("GET", "/recommendations", Param::None),
    ("POST", "/api/graphql", Param::None),
];

/// The identifier a route or operation is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    /// Nothing in particular.
    None,
    /// `{productId}`: a SKU.
    Product,
    /// `{orderId}`.
    Order,
    /// `{userId}`.
    User,
    /// `{cartId}`.
    Cart,
    /// `{id}`: a plain number.
    Id,
}

impl Param {
    /// The route placeholder, e.g. `{productId}`.
    pub fn placeholder(self) -> &'static str {
        match self {
            Param::None => "",
            Param::Product => "{productId}",
            Param::Order => "{orderId}",
            Param::User => "{userId}",
            Param::Cart => "{cartId}",
            Param::Id => "{id}",
        }
    }

    /// The span attribute carrying the id, e.g. `app.product.id`.
    pub fn attribute(self) -> Option<&'static str> {
        match self {
            Param::None | Param::Id => None,
            Param::Product => Some("app.product.id"),
            Param::Order => Some("app.order.id"),
            Param::User => Some("app.user.id"),
            Param::Cart => Some("app.cart.id"),
        }
    }

    /// The id a service name suggests its operations are about.
    pub fn for_service(name: &str) -> Param {
        const BY_NAME: &[(&str, Param)] = &[
            ("order", Param::Order),
            ("checkout", Param::Cart),
            ("cart", Param::Cart),
            ("user", Param::User),
            ("profile", Param::User),
            ("auth", Param::User),
            ("loyalty", Param::User),
            ("wishlist", Param::User),
            ("subscription", Param::User),
            ("catalog", Param::Product),
            ("product", Param::Product),
            ("inventory", Param::Product),
            ("pricing", Param::Product),
            ("review", Param::Product),
            ("recommendation", Param::Product),
            ("search", Param::Product),
            ("payment", Param::Order),
            ("shipping", Param::Order),
            ("fulfillment", Param::Order),
            ("returns", Param::Order),
            ("ledger", Param::Order),
        ];
        BY_NAME.iter().find(|(part, _)| name.contains(part)).map(|(_, p)| *p).unwrap_or(Param::Id)
    }
}

/// User agents of edge requests (browsers, apps, bots), most common first.
pub const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
    "ShopApp/5.12.1 (iOS 17.4; iPhone15,2)",
    "ShopApp/5.12.0 (Android 14; SM-S918B)",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "python-requests/2.31.0",
    "curl/8.5.0",
    "okhttp/4.12.0",
];

/// Implementation language of a service; decides its SDK, instrumentation
/// scopes, exception types and stack trace format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// Java with the OpenTelemetry agent.
    Java,
    /// Go with contrib instrumentations.
    Go,
    /// Python with auto-instrumentation.
    Python,
    /// Node.js with auto-instrumentations.
    Node,
}

impl Language {
    /// Every language, in a fixed order.
    pub const ALL: [Language; 4] = [Language::Java, Language::Go, Language::Python, Language::Node];

    /// `telemetry.sdk.language`.
    pub fn sdk_language(self) -> &'static str {
        match self {
            Language::Java => "java",
            Language::Go => "go",
            Language::Python => "python",
            Language::Node => "nodejs",
        }
    }

    /// `telemetry.sdk.version`.
    pub fn sdk_version(self) -> &'static str {
        match self {
            Language::Java => "1.42.1",
            Language::Go => "1.31.0",
            Language::Python => "1.27.0",
            Language::Node => "1.26.0",
        }
    }

    /// `process.runtime.name` and `process.runtime.version`.
    pub fn runtime(self) -> (&'static str, &'static str) {
        match self {
            Language::Java => ("OpenJDK Runtime Environment", "21.0.3+9-LTS"),
            Language::Go => ("go", "go1.22.4"),
            Language::Python => ("cpython", "3.12.3"),
            Language::Node => ("nodejs", "20.13.1"),
        }
    }

    /// Source file extension.
    fn extension(self) -> &'static str {
        match self {
            Language::Java => "java",
            Language::Go => "go",
            Language::Python => "py",
            Language::Node => "js",
        }
    }
}

/// What produced a span, which decides its instrumentation scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScopeKind {
    /// HTTP server instrumentation.
    HttpServer,
    /// HTTP client instrumentation.
    HttpClient,
    /// gRPC server and client instrumentation.
    Grpc,
    /// SQL driver instrumentation.
    Sql,
    /// MongoDB driver instrumentation.
    Mongo,
    /// Redis client instrumentation.
    Redis,
    /// Memcached client instrumentation.
    Memcached,
    /// Kafka / RabbitMQ client instrumentation.
    Messaging,
    /// Spans the application creates by hand.
    Manual,
}

impl ScopeKind {
    /// Every kind, in a fixed order (the index is the kind's number).
    pub const ALL: [ScopeKind; 9] = [
        ScopeKind::HttpServer,
        ScopeKind::HttpClient,
        ScopeKind::Grpc,
        ScopeKind::Sql,
        ScopeKind::Mongo,
        ScopeKind::Redis,
        ScopeKind::Memcached,
        ScopeKind::Messaging,
        ScopeKind::Manual,
    ];

    /// Position in [`ScopeKind::ALL`].
    pub fn index(self) -> usize {
        ScopeKind::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }
}

/// Instrumentation scope name and version of `kind` in `language`; `Manual`
/// is named by the caller (after the service).
pub fn scope(language: Language, kind: ScopeKind) -> (&'static str, &'static str) {
    use Language::*;
    use ScopeKind::*;
    match (language, kind) {
        (Java, HttpServer) => ("io.opentelemetry.spring-webmvc-6.0", "2.8.0-alpha"),
        (Java, HttpClient) => ("io.opentelemetry.java-http-client", "2.8.0-alpha"),
        (Java, Grpc) => ("io.opentelemetry.grpc-1.6", "2.8.0-alpha"),
        (Java, Sql) => ("io.opentelemetry.jdbc", "2.8.0-alpha"),
        (Java, Mongo) => ("io.opentelemetry.mongo-3.1", "2.8.0-alpha"),
        (Java, Redis) => ("io.opentelemetry.lettuce-5.1", "2.8.0-alpha"),
        (Java, Memcached) => ("io.opentelemetry.spymemcached-2.12", "2.8.0-alpha"),
        (Java, Messaging) => ("io.opentelemetry.kafka-clients-2.6", "2.8.0-alpha"),
        (Go, HttpServer) | (Go, HttpClient) => ("go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp", "0.53.0"),
        (Go, Grpc) => ("go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc", "0.53.0"),
        (Go, Sql) => ("github.com/XSAM/otelsql", "0.32.0"),
        (Go, Mongo) => ("go.opentelemetry.io/contrib/instrumentation/go.mongodb.org/mongo-driver/mongo/otelmongo", "0.53.0"),
        (Go, Redis) => ("github.com/redis/go-redis/extra/redisotel", "9.5.1"),
        (Go, Memcached) => ("go.opentelemetry.io/contrib/instrumentation/github.com/bradfitz/gomemcache/memcache/otelmemcache", "0.43.0"),
        (Go, Messaging) => ("github.com/IBM/sarama/otelsarama", "0.43.0"),
        (Python, HttpServer) => ("opentelemetry.instrumentation.flask", "0.48b0"),
        (Python, HttpClient) => ("opentelemetry.instrumentation.requests", "0.48b0"),
        (Python, Grpc) => ("opentelemetry.instrumentation.grpc", "0.48b0"),
        (Python, Sql) => ("opentelemetry.instrumentation.psycopg2", "0.48b0"),
        (Python, Mongo) => ("opentelemetry.instrumentation.pymongo", "0.48b0"),
        (Python, Redis) => ("opentelemetry.instrumentation.redis", "0.48b0"),
        (Python, Memcached) => ("opentelemetry.instrumentation.pymemcache", "0.48b0"),
        (Python, Messaging) => ("opentelemetry.instrumentation.kafka", "0.48b0"),
        (Node, HttpServer) | (Node, HttpClient) => ("@opentelemetry/instrumentation-http", "0.52.1"),
        (Node, Grpc) => ("@opentelemetry/instrumentation-grpc", "0.52.1"),
        (Node, Sql) => ("@opentelemetry/instrumentation-pg", "0.43.0"),
        (Node, Mongo) => ("@opentelemetry/instrumentation-mongodb", "0.46.0"),
        (Node, Redis) => ("@opentelemetry/instrumentation-ioredis", "0.42.0"),
        (Node, Memcached) => ("@opentelemetry/instrumentation-memcached", "0.38.0"),
        (Node, Messaging) => ("@opentelemetry/instrumentation-kafkajs", "0.2.0"),
        (_, Manual) => ("", "1.0.0"),
    }
}

/// What went wrong, independent of the language that reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// A PostgreSQL statement hit its timeout.
    DbTimeout,
    /// A PostgreSQL transaction was chosen as a deadlock victim.
    DbDeadlock,
    /// A MySQL statement hit its timeout.
    MysqlTimeout,
    /// A MySQL transaction was chosen as a deadlock victim.
    MysqlDeadlock,
    /// A MongoDB operation exceeded its time limit.
    MongoTimeout,
    /// A MongoDB write conflicted with another.
    MongoWriteConflict,
    /// No connection to the database.
    DbConnection,
    /// A cache command timed out.
    CacheTimeout,
    /// A message could not be published.
    Publish,
    /// A bug in the service itself.
    Bug,
    /// A downstream service answered with an error.
    Upstream,
    /// A downstream service did not answer in time.
    UpstreamTimeout,
}

impl Failure {
    /// Whether the failing call lasts until a timeout fires.
    pub fn is_timeout(self) -> bool {
        matches!(
            self,
            Failure::DbTimeout | Failure::MysqlTimeout | Failure::MongoTimeout | Failure::CacheTimeout | Failure::Publish | Failure::UpstreamTimeout
        )
    }

    /// HTTP status a server answers with when this failure escapes it.
    pub fn http_status(self) -> i64 {
        match self {
            Failure::Upstream | Failure::DbConnection => 503,
            failure if failure.is_timeout() => 504,
            _ => 500,
        }
    }

    /// gRPC status code (and its name) a server answers with.
    pub fn grpc_status(self) -> (i64, &'static str) {
        match self {
            Failure::Upstream | Failure::DbConnection => (14, "UNAVAILABLE"),
            failure if failure.is_timeout() => (4, "DEADLINE_EXCEEDED"),
            _ => (13, "INTERNAL"),
        }
    }

    /// `exception.type` and `exception.message` as `language` reports this
    /// failure; `{peer}` in the message is the remote service or store.
    pub fn exception(self, language: Language) -> (&'static str, &'static str) {
        use Failure::*;
        use Language::*;
        match (self, language) {
            (DbTimeout, Java) => ("org.postgresql.util.PSQLException", "ERROR: canceling statement due to statement timeout"),
            (DbTimeout, Go) => ("*pgconn.PgError", "ERROR: canceling statement due to statement timeout (SQLSTATE 57014)"),
            (DbTimeout, Python) => ("psycopg2.errors.QueryCanceled", "canceling statement due to statement timeout"),
            (DbTimeout, Node) => ("error", "canceling statement due to statement timeout"),
            (DbDeadlock, Java) => ("org.postgresql.util.PSQLException", "ERROR: deadlock detected"),
            (DbDeadlock, Go) => ("*pgconn.PgError", "ERROR: deadlock detected (SQLSTATE 40P01)"),
            (DbDeadlock, Python) => ("psycopg2.errors.DeadlockDetected", "deadlock detected"),
            (DbDeadlock, Node) => ("error", "deadlock detected"),
            (MysqlTimeout, Java) => ("com.mysql.cj.jdbc.exceptions.MySQLTimeoutException", "Statement cancelled due to timeout or client request"),
            (MysqlTimeout, Go) => ("*mysql.MySQLError", "Error 3024 (HY000): Query execution was interrupted, maximum statement execution time exceeded"),
            (MysqlTimeout, Python) => ("pymysql.err.OperationalError", "(3024, 'Query execution was interrupted, maximum statement execution time exceeded')"),
            (MysqlTimeout, Node) => ("Error", "Query inactivity timeout"),
            (MysqlDeadlock, Java) => (
                "com.mysql.cj.jdbc.exceptions.MySQLTransactionRollbackException",
                "Deadlock found when trying to get lock; try restarting transaction",
            ),
            (MysqlDeadlock, Go) => ("*mysql.MySQLError", "Error 1213 (40001): Deadlock found when trying to get lock; try restarting transaction"),
            (MysqlDeadlock, Python) => ("pymysql.err.OperationalError", "(1213, 'Deadlock found when trying to get lock; try restarting transaction')"),
            (MysqlDeadlock, Node) => ("Error", "ER_LOCK_DEADLOCK: Deadlock found when trying to get lock; try restarting transaction"),
            (MongoTimeout, Java) => ("com.mongodb.MongoExecutionTimeoutException", "Command failed with error 50 (MaxTimeMSExpired): 'operation exceeded time limit'"),
            (MongoTimeout, Go) => ("mongo.CommandError", "(MaxTimeMSExpired) operation exceeded time limit"),
            (MongoTimeout, Python) => ("pymongo.errors.ExecutionTimeout", "operation exceeded time limit"),
            (MongoTimeout, Node) => ("MongoServerError", "operation exceeded time limit"),
            (MongoWriteConflict, Java) => ("com.mongodb.MongoCommandException", "Command failed with error 112 (WriteConflict): 'Write conflict during plan execution'"),
            (MongoWriteConflict, Go) => ("mongo.CommandError", "(WriteConflict) Write conflict during plan execution"),
            (MongoWriteConflict, Python) => ("pymongo.errors.OperationFailure", "Write conflict during plan execution, full error: {'code': 112}"),
            (MongoWriteConflict, Node) => ("MongoServerError", "Write conflict during plan execution"),
            (DbConnection, Java) => (
                "java.sql.SQLTransientConnectionException",
                "HikariPool-1 - Connection is not available, request timed out after 30000ms.",
            ),
            (DbConnection, Go) => ("*net.OpError", "dial tcp {peer}: connect: connection refused"),
            (DbConnection, Python) => ("psycopg2.OperationalError", "could not connect to server: Connection refused"),
            (DbConnection, Node) => ("Error", "connect ECONNREFUSED {peer}"),
            (CacheTimeout, Java) => ("io.lettuce.core.RedisCommandTimeoutException", "Command timed out after 1 second(s)"),
            (CacheTimeout, Go) => ("*net.OpError", "read tcp {peer}: i/o timeout"),
            (CacheTimeout, Python) => ("redis.exceptions.TimeoutError", "Timeout reading from socket"),
            (CacheTimeout, Node) => ("Error", "Command timed out"),
            (Publish, Java) => (
                "org.apache.kafka.common.errors.TimeoutException",
                "Expiring 1 record(s) for {peer}: 30001 ms has passed since batch creation",
            ),
            (Publish, Go) => ("sarama.KError", "kafka server: Request exceeded the user-specified time limit in the request"),
            (Publish, Python) => ("kafka.errors.KafkaTimeoutError", "Failed to update metadata after 60.0 secs."),
            (Publish, Node) => ("KafkaJSNumberOfRetriesExceeded", "Request Produce(version: 7) timed out"),
            (Bug, Java) => ("java.lang.NullPointerException", "Cannot invoke \"String.length()\" because \"value\" is null"),
            (Bug, Go) => ("runtime.Error", "runtime error: invalid memory address or nil pointer dereference"),
            (Bug, Python) => ("KeyError", "'sku'"),
            (Bug, Node) => ("TypeError", "Cannot read properties of undefined (reading 'id')"),
            (Upstream, Java) => ("io.grpc.StatusRuntimeException", "UNAVAILABLE: upstream {peer} unavailable"),
            (Upstream, Go) => ("*status.Error", "rpc error: code = Unavailable desc = upstream {peer} unavailable"),
            (Upstream, Python) => ("requests.exceptions.HTTPError", "503 Server Error: Service Unavailable for url: http://{peer}"),
            (Upstream, Node) => ("AxiosError", "Request failed with status code 503"),
            (UpstreamTimeout, Java) => ("io.grpc.StatusRuntimeException", "DEADLINE_EXCEEDED: deadline exceeded calling {peer}"),
            (UpstreamTimeout, Go) => ("context.deadlineExceededError", "context deadline exceeded"),
            (UpstreamTimeout, Python) => ("requests.exceptions.ReadTimeout", "HTTPConnectionPool(host='{peer}', port=8080): Read timed out."),
            (UpstreamTimeout, Node) => ("AxiosError", "timeout of 5000ms exceeded"),
        }
    }
}

/// A stack trace as `language` prints it for an exception of `ty` with
/// `message` raised in `function` of `service`; `line` varies the frames.
pub fn stacktrace(language: Language, service: &str, function: &str, ty: &str, message: &str, line: u32) -> String {
    let module = service.replace('-', "");
    let class = pascal_case(service);
    let ext = language.extension();
    let exported = pascal_case(function);
    match language {
        Language::Java => format!(
            "{ty}: {message}\n\
             \tat com.example.shop.{module}.{class}Repository.{function}({class}Repository.{ext}:{line})\n\
             \tat com.example.shop.{module}.{class}Service.{function}({class}Service.{ext}:{})\n\
             \tat com.example.shop.{module}.{class}Controller.{function}({class}Controller.{ext}:{})\n\
             \tat java.base/jdk.internal.reflect.DirectMethodHandleAccessor.invoke(DirectMethodHandleAccessor.java:103)\n\
             \tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:885)\n\
             \tat jakarta.servlet.http.HttpServlet.service(HttpServlet.java:658)\n\
             \tat org.apache.catalina.core.ApplicationFilterChain.doFilter(ApplicationFilterChain.java:166)\n\
             \tat org.apache.tomcat.util.threads.ThreadPoolExecutor$Worker.run(ThreadPoolExecutor.java:659)\n\
             \tat java.base/java.lang.Thread.run(Thread.java:1583)",
            line / 2 + 17,
            line / 3 + 41,
        ),
        Language::Go => format!(
            "{ty}: {message}\n\n\
             goroutine {} [running]:\n\
             example.com/shop/{module}/internal/store.(*Store).{exported}(...)\n\
             \t/src/internal/store/store.{ext}:{line} +0x1f4\n\
             example.com/shop/{module}/internal/server.(*Server).{exported}(0xc000124000, {{0x1a2b3c0, 0xc0003a2f00}})\n\
             \t/src/internal/server/server.{ext}:{} +0x2b1\n\
             net/http.HandlerFunc.ServeHTTP(0xc0001e8d80?, {{0x1a2f5e8?, 0xc0004a61c0?}}, 0x0?)\n\
             \t/usr/local/go/src/net/http/server.go:2171 +0x29\n\
             net/http.serverHandler.ServeHTTP({{0xc000248120?}}, {{0x1a2f5e8?, 0xc0004a61c0?}}, 0x6?)\n\
             \t/usr/local/go/src/net/http/server.go:3142 +0x8e\n\
             created by net/http.(*Server).Serve in goroutine 1\n\
             \t/usr/local/go/src/net/http/server.go:3290 +0x4b4",
            line * 7 + 13,
            line / 2 + 88,
        ),
        Language::Python => format!(
            "Traceback (most recent call last):\n\
             \x20 File \"/usr/local/lib/python3.12/site-packages/flask/app.py\", line 880, in full_dispatch_request\n\
             \x20   rv = self.dispatch_request()\n\
             \x20 File \"/app/{module}/views.{ext}\", line {}, in {function}\n\
             \x20   result = service.{function}(request.args)\n\
             \x20 File \"/app/{module}/service.{ext}\", line {line}, in {function}\n\
             \x20   return repository.load(key)\n\
             {ty}: {message}",
            line / 2 + 23,
        ),
        Language::Node => format!(
            "{ty}: {message}\n\
             \x20   at {class}Repository.{function} (/app/src/repositories/{module}.{ext}:{line}:17)\n\
             \x20   at async {class}Service.{function} (/app/src/services/{module}.{ext}:{}:22)\n\
             \x20   at async /app/src/routes/{module}.{ext}:{}:5\n\
             \x20   at process.processTicksAndRejections (node:internal/process/task_queues:95:5)",
            line / 2 + 31,
            line / 3 + 12,
        ),
    }
}

/// `user-profile` → `UserProfile`.
pub fn pascal_case(name: &str) -> String {
    name.split(['-', '_', '.'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut chars = p.chars();
            let first = chars.next().map(|c| c.to_ascii_uppercase()).unwrap_or_default();
            std::iter::once(first).chain(chars).collect::<String>()
        })
        .collect()
}

/// `user-profile` → `userProfile`.
pub fn camel_case(name: &str) -> String {
    let pascal = pascal_case(name);
    let mut chars = pascal.chars();
    match chars.next() {
        Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_stacktraces() {
        assert_eq!(pascal_case("user-profile"), "UserProfile");
        assert_eq!(camel_case("user-profile"), "userProfile");
        assert_eq!(Param::for_service("order-store"), Param::Order);
        assert_eq!(Param::for_service("geo"), Param::Id);
        for language in Language::ALL {
            let (ty, message) = Failure::Bug.exception(language);
            let trace = stacktrace(language, "cart", "getCart", ty, message, 42);
            assert!(trace.contains(ty) && trace.contains(message), "{trace}");
            assert!(trace.lines().count() >= 5, "{trace}");
            for kind in ScopeKind::ALL {
                assert_eq!(scope(language, kind).0.is_empty(), kind == ScopeKind::Manual);
            }
        }
    }
}
