//! Shorthands for OTLP attributes.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};

fn key_value(key: &str, value: Value) -> KeyValue {
    KeyValue { key: key.to_owned(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
}

/// A string attribute.
pub fn string(key: &str, value: impl Into<String>) -> KeyValue {
    key_value(key, Value::StringValue(value.into()))
}

/// An integer attribute.
pub fn int(key: &str, value: i64) -> KeyValue {
    key_value(key, Value::IntValue(value))
}

/// A floating-point attribute.
pub fn float(key: &str, value: f64) -> KeyValue {
    key_value(key, Value::DoubleValue(value))
}

/// A boolean attribute.
pub fn boolean(key: &str, value: bool) -> KeyValue {
    key_value(key, Value::BoolValue(value))
}
