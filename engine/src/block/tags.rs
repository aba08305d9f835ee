//! Tag summaries: per block, the attribute names of each scope and (up to a
//! cap) their distinct values by type. Written as `tags.json` beside the
//! block and held in memory by the catalog, so tag autocomplete answers
//! from memory instead of scanning spans.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use arrow::array::{Array, ArrayRef, AsArray, MapArray, RecordBatch, StructArray};
use arrow::datatypes::{DataType, Float64Type, Int8Type, Int64Type};
use foldhash::{HashSet, HashSetExt};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::schema::{ATTR_MAP_SUFFIXES, AttrScope, DEDICATED_COLUMNS, col, column_index};

/// Distinct values kept per tag; beyond it the tag is marked truncated.
pub const MAX_VALUES_PER_TAG: usize = 1000;

/// Scope names, as Tempo's tag API spells them.
pub const SCOPE_SPAN: &str = "span";
pub const SCOPE_RESOURCE: &str = "resource";
pub const SCOPE_EVENT: &str = "event";
pub const SCOPE_LINK: &str = "link";
pub const SCOPE_INSTRUMENTATION: &str = "instrumentation";
pub const SCOPE_INTRINSIC: &str = "intrinsic";

/// Distinct values of one tag, by value type (`string`, `int`, `float`, `bool`, `keyword`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TagValues {
    pub values: BTreeMap<String, BTreeSet<String>>,
    /// More distinct values existed than were kept.
    pub truncated: bool,
}

impl TagValues {
    fn insert(&mut self, ty: &str, value: &str) {
        // Most values are already known: look before allocating.
        match self.values.get(ty) {
            Some(set) if set.contains(value) => return,
            // Full: every new value is refused.
            Some(_) if self.truncated => return,
            _ => {}
        }
        let count: usize = self.values.values().map(BTreeSet::len).sum();
        let set = self.values.entry(ty.to_owned()).or_default();
        if count >= MAX_VALUES_PER_TAG {
            self.truncated = true;
            return;
        }
        set.insert(value.to_owned());
    }
}

/// Tags of a set of spans, by scope then name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TagSummary {
    pub scopes: BTreeMap<String, BTreeMap<String, TagValues>>,
}

fn typed_suffix(suffix: &str) -> Option<&'static str> {
    match suffix {
        "str" => Some("string"),
        "int" => Some("int"),
        "float" => Some("float"),
        "bool" => Some("bool"),
        _ => None,
    }
}

fn render(values: &ArrayRef, i: usize) -> Option<Cow<'_, str>> {
    if values.is_null(i) {
        return None;
    }
    Some(match values.data_type() {
        DataType::Utf8 => Cow::Borrowed(values.as_string::<i32>().value(i)),
        DataType::Int64 => Cow::Owned(values.as_primitive::<Int64Type>().value(i).to_string()),
        DataType::Float64 => Cow::Owned(values.as_primitive::<Float64Type>().value(i).to_string()),
        DataType::Boolean => Cow::Owned(values.as_boolean().value(i).to_string()),
        _ => return None,
    })
}

impl TagSummary {
    fn tag(&mut self, scope: &str, name: &str) -> &mut TagValues {
        // Called for every value: allocate the keys only when new.
        if !self.scopes.contains_key(scope) {
            self.scopes.insert(scope.to_owned(), BTreeMap::new());
        }
        let tags = self.scopes.get_mut(scope).expect("inserted above");
        if !tags.contains_key(name) {
            tags.insert(name.to_owned(), TagValues::default());
        }
        tags.get_mut(name).expect("inserted above")
    }

    /// Adds every entry of a map column (only the rows `range` of it).
    fn add_map(&mut self, scope: &str, map: &MapArray, suffix: &str) {
        let keys = map.keys().as_string::<i32>();
        let values = map.values();
        let offsets = map.value_offsets();
        let (start, end) = (offsets[0] as usize, offsets[map.len()] as usize);
        // Resource and scope attributes repeat on every span: each distinct
        // entry goes through the summary's ordered maps once.
        let mut seen: HashSet<(&str, Option<Cow<'_, str>>)> = HashSet::new();
        let ty = typed_suffix(suffix);
        for i in start..end {
            let entry = (keys.value(i), ty.and(render(values, i)));
            if seen.contains(&entry) {
                continue;
            }
            let tag = self.tag(scope, entry.0);
            if let (Some(ty), Some(v)) = (ty, &entry.1) {
                tag.insert(ty, v);
            }
            seen.insert(entry);
        }
    }

    fn add_attr_maps(&mut self, scope: &str, columns: &[&ArrayRef]) -> Result<()> {
        for (column, suffix) in columns.iter().zip(ATTR_MAP_SUFFIXES) {
            let map = column.as_map_opt().ok_or_else(|| Error::internal("attribute column is not a map"))?;
            self.add_map(scope, map, suffix);
        }
        Ok(())
    }

    fn add_strings(&mut self, scope: &str, name: &str, ty: &str, column: &ArrayRef) {
        let strings = column.as_string::<i32>();
        // Few distinct values repeat on many spans: each goes through the
        // summary's ordered maps once.
        let mut seen: HashSet<&str> = HashSet::new();
        for value in strings.iter().flatten() {
            if seen.insert(value) {
                self.tag(scope, name).insert(ty, value);
            }
        }
    }

    /// Summarises a span batch.
    pub fn from_batch(batch: &RecordBatch) -> Result<Self> {
        let mut summary = TagSummary::default();
        let column = |name: &str| batch.column(column_index(name));
        for (prefix, scope) in
            [(col::SPAN_ATTRS, SCOPE_SPAN), (col::RESOURCE_ATTRS, SCOPE_RESOURCE), (col::SCOPE_ATTRS, SCOPE_INSTRUMENTATION)]
        {
            let maps: Vec<&ArrayRef> = ATTR_MAP_SUFFIXES.iter().map(|s| column(&format!("{prefix}_{s}"))).collect();
            summary.add_attr_maps(scope, &maps)?;
        }
        for d in DEDICATED_COLUMNS {
            let scope = match d.scope {
                AttrScope::Span => SCOPE_SPAN,
                AttrScope::Resource => SCOPE_RESOURCE,
            };
            let values = column(d.column);
            for i in 0..values.len() {
                if let Some(v) = render(values, i) {
                    let ty = if values.data_type() == &DataType::Int64 { "int" } else { "string" };
                    summary.tag(scope, d.key).insert(ty, &v);
                }
            }
        }
        for (list, scope) in [(col::EVENTS, SCOPE_EVENT), (col::LINKS, SCOPE_LINK)] {
            let items: &StructArray = column(list).as_list::<i32>().values().as_struct();
            let maps: Vec<&ArrayRef> = ATTR_MAP_SUFFIXES
                .iter()
                .map(|s| items.column_by_name(&format!("{}_{s}", col::ATTRS)).ok_or_else(|| Error::internal("no attrs")))
                .collect::<Result<_>>()?;
            summary.add_attr_maps(scope, &maps)?;
            if scope == SCOPE_EVENT
                && let Some(names) = items.column_by_name(col::NAME)
            {
                summary.add_strings(SCOPE_INTRINSIC, "event:name", "string", names);
            }
        }
        summary.add_strings(SCOPE_INTRINSIC, "name", "string", column(col::NAME));
        summary.add_strings(SCOPE_INTRINSIC, "statusMessage", "string", column(col::STATUS_MESSAGE));
        summary.add_strings(SCOPE_INTRINSIC, "rootName", "string", column(col::TRACE_ROOT_NAME));
        summary.add_strings(SCOPE_INTRINSIC, "rootServiceName", "string", column(col::TRACE_ROOT_SERVICE));
        summary.add_strings(SCOPE_INTRINSIC, "instrumentation:name", "string", column(col::SCOPE_NAME));
        let status = column(col::STATUS_CODE).as_primitive::<Int8Type>();
        for i in 0..status.len() {
            let name = ["unset", "ok", "error"].get(status.value(i) as usize).copied().unwrap_or("unset");
            summary.tag(SCOPE_INTRINSIC, "status").insert("keyword", name);
        }
        let kind = column(col::KIND).as_primitive::<Int8Type>();
        for i in 0..kind.len() {
            let names = ["unspecified", "internal", "server", "client", "producer", "consumer"];
            let name = names.get(kind.value(i) as usize).copied().unwrap_or("unspecified");
            summary.tag(SCOPE_INTRINSIC, "kind").insert("keyword", name);
        }
        Ok(summary)
    }

    /// Adds everything of `other`.
    pub fn merge(&mut self, other: &TagSummary) {
        for (scope, tags) in &other.scopes {
            for (name, values) in tags {
                let mine = self.tag(scope, name);
                mine.truncated |= values.truncated;
                for (ty, set) in &values.values {
                    for v in set {
                        mine.insert(ty, v);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    use super::*;
    use crate::convert::resource_spans_to_batch;

    fn kv(k: &str, v: Value) -> KeyValue {
        KeyValue { key: k.into(), value: Some(AnyValue { value: Some(v) }), ..Default::default() }
    }

    #[test]
    fn values_beyond_the_cap_are_refused_and_mark_the_tag_truncated() {
        let mut tag = TagValues::default();
        for i in 0..MAX_VALUES_PER_TAG {
            tag.insert("int", &i.to_string());
        }
        tag.insert("int", "0");
        assert!(!tag.truncated, "a known value is not a new one");
        tag.insert("int", "new");
        tag.insert("string", "other type");
        assert!(tag.truncated);
        assert_eq!(tag.values["int"].len(), MAX_VALUES_PER_TAG);
        assert!(tag.values["string"].is_empty());
    }

    #[test]
    fn summarises_names_and_typed_values_per_scope() {
        let rs = ResourceSpans {
            resource: Some(Resource { attributes: vec![kv("service.name", Value::StringValue("web".into()))], ..Default::default() }),
            scope_spans: vec![ScopeSpans {
                spans: (0..3u8)
                    .map(|i| Span {
                        trace_id: vec![1; 16],
                        span_id: vec![i + 1; 8],
                        name: format!("op{i}"),
                        kind: 2,
                        attributes: vec![kv("http.status_code", Value::IntValue(200 + i as i64)), kv("retry", Value::BoolValue(true))],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let (batch, _) = resource_spans_to_batch(&[rs]).unwrap();
        let s = TagSummary::from_batch(&batch).unwrap();
        let code = &s.scopes["span"]["http.status_code"];
        assert_eq!(code.values["int"].len(), 3);
        assert_eq!(s.scopes["span"]["retry"].values["bool"].iter().collect::<Vec<_>>(), ["true"]);
        assert!(s.scopes["resource"]["service.name"].values["string"].contains("web"));
        assert_eq!(s.scopes["intrinsic"]["kind"].values["keyword"].iter().collect::<Vec<_>>(), ["server"]);
        assert_eq!(s.scopes["intrinsic"]["name"].values["string"].len(), 3);

        let mut merged = TagSummary::default();
        merged.merge(&s);
        merged.merge(&s);
        assert_eq!(merged, s);
    }
}
