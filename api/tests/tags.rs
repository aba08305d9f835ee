//! Tag autocomplete endpoints, answered from head and block summaries, in
//! Tempo's response shapes.

mod common;

use common::{Options, TestServer, attr, post_otlp, random_trace_id, trace};
use serde_json::{Value, json};

async fn get(server: &TestServer, path: &str) -> (u16, Value) {
    let r = reqwest::get(server.url(path)).await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[tokio::test]
async fn tags_and_values_come_from_head_and_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), Options::default());
    let mut old = trace(random_trace_id(), "billing", &[(1, None, "charge")]);
    old.scope_spans[0].spans[0].attributes.push(attr("payment.provider", "stripe"));
    assert_eq!(post_otlp(&server, vec![old], None).await.0, 200);
    server.flush().await;
    assert_eq!(post_otlp(&server, vec![trace(random_trace_id(), "web", &[(1, None, "GET /")])], None).await.0, 200);

    let (status, body) = get(&server, "/api/search/tags").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = body["tagNames"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(names.contains(&"http.method") && names.contains(&"payment.provider") && names.contains(&"service.name"), "{names:?}");

    let (_, body) = get(&server, "/api/v2/search/tags").await;
    let scopes = body["scopes"].as_array().unwrap();
    let scope = |name: &str| scopes.iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("{body}"))["tags"].clone();
    assert!(scope("resource").as_array().unwrap().contains(&json!("service.name")));
    assert!(scope("span").as_array().unwrap().contains(&json!("payment.provider")));
    assert!(scope("intrinsic").as_array().unwrap().contains(&json!("rootServiceName")));

    let (_, body) = get(&server, "/api/v2/search/tags?scope=span").await;
    assert_eq!(body["scopes"].as_array().unwrap().len(), 1);

    let (_, body) = get(&server, "/api/search/tag/service.name/values").await;
    assert_eq!(body["tagValues"], json!(["billing", "web"]), "block and head values");

    let (_, body) = get(&server, "/api/v2/search/tag/resource.service.name/values").await;
    assert_eq!(body["tagValues"], json!([{"type": "string", "value": "billing"}, {"type": "string", "value": "web"}]));
    let (_, body) = get(&server, "/api/v2/search/tag/.payment.provider/values").await;
    assert_eq!(body["tagValues"], json!([{"type": "string", "value": "stripe"}]));
    let (_, body) = get(&server, "/api/v2/search/tag/kind/values").await;
    assert_eq!(body["tagValues"], json!([{"type": "keyword", "value": "server"}]));
    let (_, body) = get(&server, "/api/v2/search/tag/name/values?limit=1").await;
    assert_eq!(body["tagValues"].as_array().unwrap().len(), 1);

    // A time range before the block excludes it; the head is always included.
    let (_, body) = get(&server, "/api/search/tag/service.name/values?start=1000&end=2000").await;
    assert_eq!(body["tagValues"], json!(["web"]));

    // `q` narrows the values to spans matching it; an incomplete `q` is ignored.
    let (_, body) = get(&server, "/api/v2/search/tag/resource.service.name/values?q=%7B%20name%20%3D%20%22charge%22%20%7D").await;
    assert_eq!(body["tagValues"], json!([{"type": "string", "value": "billing"}]));
    let (_, body) = get(&server, "/api/v2/search/tag/span.http.method/values?q=%7B%20resource.service.name%20%3D%20%22web%22%20%7D").await;
    assert_eq!(body["tagValues"], json!([{"type": "string", "value": "GET"}]));
    let (_, body) = get(&server, "/api/v2/search/tag/kind/values?q=%7B%20name%20%3D%20%22charge%22%20%7D").await;
    assert_eq!(body["tagValues"], json!([{"type": "keyword", "value": "server"}]));
    let (_, body) = get(&server, "/api/v2/search/tag/resource.service.name/values?q=%7B%20name%20%3D%20").await;
    assert_eq!(body["tagValues"].as_array().unwrap().len(), 2, "incomplete q is ignored");

    assert_eq!(get(&server, "/api/v2/search/tag/service.name/values").await.0, 400, "unscoped without a dot");
    assert_eq!(get(&server, "/api/v2/search/tags?scope=bogus").await.0, 400);
    assert_eq!(get(&server, "/api/search/tags?limit=0").await.0, 400);
    assert_eq!(get(&server, "/api/search/tags?start=5&end=1").await.0, 400);
}
