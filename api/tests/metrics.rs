//! TraceQL metrics over the real server: `/api/metrics/query_range` and
//! `/api/metrics/query` in Tempo's shapes, grouped and ungrouped, with
//! quantiles, topk and bad input.

mod common;

use common::{Options, TestServer, post_otlp, random_trace_id, trace};
use serde_json::Value;

async fn get(server: &TestServer, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
    let r = reqwest::Client::new().get(server.url(path)).query(params).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn label<'a>(series: &'a Value, key: &str) -> &'a Value {
    &series["labels"].as_array().unwrap().iter().find(|l| l["key"] == key).unwrap_or_else(|| panic!("{series}"))["value"]
}

#[tokio::test]
async fn rate_count_quantile_and_instant() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), Options::default());
    let base = 1_700_000_000u64; // seconds
    // 6 spans of "web" in the first minute, 2 of "db" in the second.
    for i in 0..3u64 {
        let mut rs = trace(random_trace_id(), "web", &[(1, None, "GET /"), (2, Some(1), "render")]);
        for s in &mut rs.scope_spans[0].spans {
            s.start_time_unix_nano = (base + 10 + i) * 1_000_000_000;
            s.end_time_unix_nano = s.start_time_unix_nano + (i + 1) * 100_000_000;
        }
        assert_eq!(post_otlp(&server, vec![rs], None).await.0, 200);
    }
    server.flush().await;
    let mut rs = trace(random_trace_id(), "db", &[(1, None, "SELECT"), (2, None, "INSERT")]);
    for s in &mut rs.scope_spans[0].spans {
        s.start_time_unix_nano = (base + 70) * 1_000_000_000;
        s.end_time_unix_nano = s.start_time_unix_nano + 2_000_000_000;
    }
    assert_eq!(post_otlp(&server, vec![rs], None).await.0, 200);

    let start = base.to_string();
    let end = (base + 120).to_string();
    let range = |q: &'static str| vec![("q", q), ("start", start.as_str()), ("end", end.as_str()), ("step", "60s")];

    let (status, body) = get(&server, "/api/metrics/query_range", &range("{ } | rate() by (resource.service.name)")).await;
    assert_eq!(status, 200, "{body}");
    let series = body["series"].as_array().unwrap();
    assert_eq!(series.len(), 2, "{body}");
    let web = series.iter().find(|s| label(s, "resource.service.name")["stringValue"] == "web").unwrap();
    let samples = web["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 2, "one sample per step, zeros included");
    assert_eq!(samples[0]["timestampMs"], (base * 1000).to_string());
    assert_eq!(samples[0]["value"], 0.1, "6 spans / 60 s");
    assert_eq!(samples[1]["value"], 0.0);
    assert!(web["promLabels"].as_str().unwrap().contains("resource.service.name=\"web\""));

    let (_, body) = get(&server, "/api/metrics/query_range", &range("{ resource.service.name = \"web\" } | count_over_time()")).await;
    let only = &body["series"][0];
    assert_eq!(label(only, "__name__")["stringValue"], "count_over_time");
    assert_eq!(only["samples"][0]["value"], 6.0);

    let (_, body) = get(&server, "/api/metrics/query_range", &range("{ } | quantile_over_time(duration, .5, .99) by (resource.service.name)")).await;
    let db_p99 = body["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| label(s, "resource.service.name")["stringValue"] == "db" && label(s, "p")["doubleValue"] == 0.99)
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(db_p99["samples"][0]["value"], 2.0, "durations in seconds");

    let (_, body) = get(&server, "/api/metrics/query_range", &range("{ } | max_over_time(duration) by (name) | topk(1)")).await;
    assert_eq!(body["series"].as_array().unwrap().len(), 1, "{body}");
    let top = &body["series"][0];
    assert!(["SELECT", "INSERT"].contains(&label(top, "name")["stringValue"].as_str().unwrap()), "{top}");
    assert_eq!(top["samples"][0]["value"], 2.0);

    let (status, body) = get(&server, "/api/metrics/query", &[("q", "{ } | count_over_time() by (resource.service.name)"), ("start", &start), ("end", &end)]).await;
    assert_eq!(status, 200, "{body}");
    let total: f64 = body["series"].as_array().unwrap().iter().map(|s| s["value"].as_f64().unwrap()).sum();
    assert_eq!(total, 8.0);

    // The same over gRPC on the HTTP port (Grafana's streaming metrics).
    let mut client = spanlake::tempopb::streaming_querier_client::StreamingQuerierClient::connect(format!("http://{}", server.http)).await.unwrap();
    let request = spanlake::tempopb::QueryRangeRequest {
        query: "{ } | count_over_time()".into(),
        start: base * 1_000_000_000,
        end: (base + 120) * 1_000_000_000,
        step: 60_000_000_000,
    };
    let mut stream = client.metrics_query_range(request).await.unwrap().into_inner();
    let message = stream.message().await.unwrap().unwrap();
    let values: Vec<f64> = message.series[0].samples.iter().map(|s| s.value).collect();
    assert_eq!(values, [6.0, 2.0]);

    for (params, why) in [
        (vec![("q", "{ }"), ("start", start.as_str()), ("end", end.as_str())], "not a metrics query"),
        (vec![("q", "{ } | rate()"), ("start", end.as_str()), ("end", start.as_str())], "start after end"),
        (vec![("q", "{ } | rate()"), ("start", start.as_str()), ("end", end.as_str()), ("step", "soon")], "bad step"),
        (vec![("q", "{ } | rate()"), ("start", "then"), ("end", end.as_str())], "bad start"),
        (vec![("q", "{ } | rate()"), ("start", start.as_str()), ("end", "10000000000")], "end beyond 2262"),
        (vec![("q", "{ . }")], "bad TraceQL"),
    ] {
        let (status, body) = get(&server, "/api/metrics/query_range", &params).await;
        assert_eq!(status, 400, "{why}: {body}");
    }
}
