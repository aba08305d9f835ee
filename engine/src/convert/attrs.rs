//! Attribute lists ⇄ the five typed attribute maps (`_str`, `_int`, `_float`,
//! `_bool`, `_other`). One builder and one reader serve span, resource, event
//! and link attributes alike.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBuilder, Float64Array, Float64Builder, Int64Array,
    Int64Builder, MapArray, MapBuilder, StringArray, StringBuilder,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};

use super::wire::{KeyValueView, ValueView};
use crate::error::{Error, Result};

/// Renders "other" attribute values (arrays, kvlists, bytes and empty
/// values) as OTLP/JSON, the text stored in the `_other` maps. Reuses one
/// buffer, so rendering many values allocates once.
#[derive(Debug, Default)]
pub(crate) struct OtherJson {
    buf: Vec<u8>,
}

impl OtherJson {
    /// The value of `key_value` (the protobuf of a `KeyValue`) as JSON
    /// (`null` when it has none); valid until the next call.
    pub(crate) fn render(&mut self, key_value: &[u8]) -> Result<&str> {
        let value = KeyValueView::decode_other(key_value)?;
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, &value)?;
        std::str::from_utf8(&self.buf).map_err(|e| Error::internal(format!("attribute JSON: {e}")))
    }
}

/// An attribute list split by value type, ready to be appended to one row
/// or repeated on many (a resource's or scope's attributes on each of its
/// spans are split, and `other` values rendered as JSON, only once).
#[derive(Debug, Default)]
pub(crate) struct SplitAttrs<'a> {
    str: Vec<(&'a str, &'a str)>,
    int: Vec<(&'a str, i64)>,
    float: Vec<(&'a str, f64)>,
    bool: Vec<(&'a str, bool)>,
    /// Arrays, kvlists, bytes and empty values as OTLP/JSON.
    other: Vec<(&'a str, String)>,
}

impl<'a> SplitAttrs<'a> {
    /// Splits `attrs`, leaving out those `skip` selects.
    pub(crate) fn new(attrs: &[KeyValueView<'a>], mut skip: impl FnMut(&KeyValueView<'a>) -> bool) -> Result<Self> {
        let mut split = Self::default();
        let mut json = OtherJson::default();
        for kv in attrs.iter().filter(|kv| !skip(kv)) {
            let key = kv.key;
            match kv.value {
                ValueView::Str(s) => split.str.push((key, s)),
                ValueView::Int(i) => split.int.push((key, i)),
                ValueView::Float(f) => split.float.push((key, f)),
                ValueView::Bool(b) => split.bool.push((key, b)),
                ValueView::Other(message) => split.other.push((key, json.render(message)?.to_owned())),
            }
        }
        Ok(split)
    }
}

/// Expected size of an attribute column, so that its builders are
/// allocated once instead of growing (and copying) while appending.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct AttrsSize {
    /// Map rows (one per span, event or link).
    pub(crate) rows: usize,
    /// Attributes over all rows, by map (in [`ATTR_MAP_SUFFIXES`](crate::schema::ATTR_MAP_SUFFIXES) order).
    entries: [usize; 5],
    /// Key bytes, by map.
    key_bytes: [usize; 5],
    /// Bytes of string values (`other` values are rendered as JSON, of a
    /// length not known before).
    str_bytes: usize,
}

impl AttrsSize {
    /// About how many bytes the maps of this size take: keys, string
    /// values, the offsets of both and 8-byte values, and map offsets.
    pub(crate) fn bytes(&self) -> usize {
        let sum = |counts: &[usize; 5]| counts.iter().fold(0usize, |sum, n| sum.saturating_add(*n));
        let fixed = sum(&self.entries).saturating_mul(16).saturating_add(self.rows.saturating_mul(4));
        fixed.saturating_add(sum(&self.key_bytes)).saturating_add(self.str_bytes)
    }

    /// Counts one row holding `attrs` but those `skip` selects, repeated `times` times.
    pub(crate) fn add(&mut self, attrs: &[KeyValueView<'_>], times: usize, mut skip: impl FnMut(&KeyValueView<'_>) -> bool) {
        self.rows += times;
        for kv in attrs.iter().filter(|kv| !skip(kv)) {
            let map = match kv.value {
                ValueView::Str(s) => {
                    self.str_bytes += s.len() * times;
                    0
                }
                ValueView::Int(_) => 1,
                ValueView::Float(_) => 2,
                ValueView::Bool(_) => 3,
                ValueView::Other(_) => 4,
            };
            self.entries[map] += times;
            self.key_bytes[map] += kv.key.len() * times;
        }
    }
}

/// Builds the five typed maps for one attribute list per row.
pub(crate) struct AttrMapsBuilder {
    str: MapBuilder<StringBuilder, StringBuilder>,
    int: MapBuilder<StringBuilder, Int64Builder>,
    float: MapBuilder<StringBuilder, Float64Builder>,
    bool: MapBuilder<StringBuilder, BooleanBuilder>,
    other: MapBuilder<StringBuilder, StringBuilder>,
    /// Renders `other` values, reused across rows.
    json: OtherJson,
}

impl AttrMapsBuilder {
    /// A builder with room for `size` (`other` values grow as rendered).
    pub(crate) fn with_size(size: AttrsSize) -> Self {
        let (rows, entries) = (size.rows, size.entries);
        let keys = |map: usize| StringBuilder::with_capacity(entries[map], size.key_bytes[map]);
        Self {
            str: MapBuilder::with_capacity(None, keys(0), StringBuilder::with_capacity(entries[0], size.str_bytes), rows),
            int: MapBuilder::with_capacity(None, keys(1), Int64Builder::with_capacity(entries[1]), rows),
            float: MapBuilder::with_capacity(None, keys(2), Float64Builder::with_capacity(entries[2]), rows),
            bool: MapBuilder::with_capacity(None, keys(3), BooleanBuilder::with_capacity(entries[3]), rows),
            other: MapBuilder::with_capacity(None, keys(4), StringBuilder::with_capacity(entries[4], 0), rows),
            json: OtherJson::default(),
        }
    }

    /// Appends one row holding `attrs`, leaving out those `skip` selects
    /// (attributes stored in dedicated columns). Values go straight into the
    /// builders: this runs for every span, event and link.
    pub(crate) fn append<'a>(&mut self, attrs: &[KeyValueView<'a>], mut skip: impl FnMut(&KeyValueView<'a>) -> bool) -> Result<()> {
        for kv in attrs {
            if skip(kv) {
                continue;
            }
            let key = kv.key;
            match kv.value {
                ValueView::Str(s) => {
                    self.str.keys().append_value(key);
                    self.str.values().append_value(s);
                }
                ValueView::Int(i) => {
                    self.int.keys().append_value(key);
                    self.int.values().append_value(i);
                }
                ValueView::Float(f) => {
                    self.float.keys().append_value(key);
                    self.float.values().append_value(f);
                }
                ValueView::Bool(b) => {
                    self.bool.keys().append_value(key);
                    self.bool.values().append_value(b);
                }
                ValueView::Other(message) => {
                    let json = self.json.render(message)?;
                    self.other.keys().append_value(key);
                    self.other.values().append_value(json);
                }
            }
        }
        self.end_row()
    }

    /// Appends `rows` rows each holding the attributes of `split`.
    pub(crate) fn append_split(&mut self, split: &SplitAttrs<'_>, rows: usize) -> Result<()> {
        for _ in 0..rows {
            for (key, value) in &split.str {
                self.str.keys().append_value(key);
                self.str.values().append_value(value);
            }
            for (key, value) in &split.int {
                self.int.keys().append_value(key);
                self.int.values().append_value(*value);
            }
            for (key, value) in &split.float {
                self.float.keys().append_value(key);
                self.float.values().append_value(*value);
            }
            for (key, value) in &split.bool {
                self.bool.keys().append_value(key);
                self.bool.values().append_value(*value);
            }
            for (key, json) in &split.other {
                self.other.keys().append_value(key);
                self.other.values().append_value(json);
            }
            self.end_row()?;
        }
        Ok(())
    }

    /// Ends a row of each map holding the entries appended since the last.
    fn end_row(&mut self) -> Result<()> {
        self.str.append(true)?;
        self.int.append(true)?;
        self.float.append(true)?;
        self.bool.append(true)?;
        self.other.append(true)?;
        Ok(())
    }

    /// The five map arrays in schema order.
    pub(crate) fn finish(&mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.str.finish()),
            Arc::new(self.int.finish()),
            Arc::new(self.float.finish()),
            Arc::new(self.bool.finish()),
            Arc::new(self.other.finish()),
        ]
    }
}

/// Reads attribute lists back out of the five typed map arrays.
pub(crate) struct AttrMapsReader<'a> {
    maps: [&'a MapArray; 5],
}

impl<'a> AttrMapsReader<'a> {
    /// `maps` are the five map columns in schema order.
    pub(crate) fn new(maps: [&'a ArrayRef; 5]) -> Result<Self> {
        let mut out = Vec::with_capacity(5);
        for m in maps {
            out.push(
                m.as_any()
                    .downcast_ref::<MapArray>()
                    .ok_or_else(|| Error::internal("attribute column is not a map"))?,
            );
        }
        Ok(Self { maps: [out[0], out[1], out[2], out[3], out[4]] })
    }

    /// Appends the attributes of row `row` to `out`.
    pub(crate) fn read_row(&self, row: usize, out: &mut Vec<KeyValue>) -> Result<()> {
        for (slot, map) in self.maps.iter().enumerate() {
            if map.is_null(row) {
                continue;
            }
            let range = map.value_offsets()[row] as usize..map.value_offsets()[row + 1] as usize;
            let keys = downcast::<StringArray>(map.keys())?;
            let values = map.values();
            for i in range {
                let value = match slot {
                    0 => Some(Value::StringValue(downcast::<StringArray>(values)?.value(i).to_owned())),
                    1 => Some(Value::IntValue(downcast::<Int64Array>(values)?.value(i))),
                    2 => Some(Value::DoubleValue(downcast::<Float64Array>(values)?.value(i))),
                    3 => Some(Value::BoolValue(downcast::<BooleanArray>(values)?.value(i))),
                    _ => {
                        let json = downcast::<StringArray>(values)?.value(i);
                        let any: Option<AnyValue> = serde_json::from_str(json)?;
                        out.push(KeyValue { key: keys.value(i).to_owned(), value: any, ..Default::default() });
                        continue;
                    }
                };
                out.push(KeyValue {
                    key: keys.value(i).to_owned(),
                    value: Some(AnyValue { value }),
                    ..Default::default()
                });
            }
        }
        Ok(())
    }
}

/// Downcasts an array, with an error instead of a panic on a schema mismatch.
pub(crate) fn downcast<T: Array + 'static>(array: &ArrayRef) -> Result<&T> {
    array
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| Error::internal(format!("unexpected array type {}", array.data_type())))
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};

    use super::*;

    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue { key: key.to_owned(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
    }

    /// One attribute of each kind rendered into the `other` map.
    fn others() -> Vec<KeyValue> {
        let array = ArrayValue {
            values: vec![AnyValue { value: Some(Value::StringValue("a".into())) }, AnyValue { value: Some(Value::IntValue(7)) }],
        };
        let kvlist = KeyValueList { values: vec![kv("k", Value::BoolValue(true))] };
        vec![
            kv("array", Value::ArrayValue(array)),
            kv("kvlist", Value::KvlistValue(kvlist)),
            kv("bytes", Value::BytesValue(vec![0, 1, 255])),
            KeyValue { key: "empty".into(), value: Some(AnyValue { value: None }), ..Default::default() },
            KeyValue { key: "none".into(), value: None, ..Default::default() },
        ]
    }

    /// The `other` map's values of row 0.
    fn other_values(maps: &[ArrayRef]) -> Vec<String> {
        let other = maps[4].as_any().downcast_ref::<MapArray>().unwrap();
        let values = downcast::<StringArray>(other.values()).unwrap();
        values.iter().map(|v| v.unwrap().to_owned()).collect()
    }

    /// The protobuf of each of `attrs`.
    fn encoded(attrs: &[KeyValue]) -> Vec<Vec<u8>> {
        use prost::Message;
        attrs.iter().map(Message::encode_to_vec).collect()
    }

    #[test]
    fn other_values_render_as_otlp_json() {
        let mut json = OtherJson::default();
        let rendered: Vec<String> = encoded(&others()).iter().map(|kv| json.render(kv).unwrap().to_owned()).collect();
        assert_eq!(rendered, [
            r#"{"arrayValue":{"values":[{"stringValue":"a"},{"intValue":"7"}]}}"#,
            r#"{"kvlistValue":{"values":[{"key":"k","value":{"boolValue":true}}]}}"#,
            r#"{"bytesValue":"AAH/"}"#,
            r#"{}"#,
            "null",
        ]);
    }

    #[test]
    fn span_and_resource_attributes_render_other_values_alike() {
        let encoded = encoded(&others());
        let attrs: Vec<KeyValueView> = encoded.iter().map(|kv| KeyValueView::parse(kv).unwrap()).collect();
        assert!(attrs.iter().all(|kv| matches!(kv.value, ValueView::Other(_))));
        let mut per_span = AttrMapsBuilder::with_size(AttrsSize::default());
        per_span.append(&attrs, |_| false).unwrap();
        let mut split = AttrMapsBuilder::with_size(AttrsSize::default());
        split.append_split(&SplitAttrs::new(&attrs, |_| false).unwrap(), 1).unwrap();
        assert_eq!(other_values(&per_span.finish()), other_values(&split.finish()));
    }
}
