//! Tag summaries: per block, the attribute names of each scope and (up to a
//! cap) their distinct values by type. Written as `tags.json` beside the
//! block and held in memory by the catalog, so tag autocomplete answers
//! from memory instead of scanning spans.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

use arrow::array::{Array, ArrayRef, AsArray, MapArray, RecordBatch, StringArray, StructArray};
use arrow::datatypes::{DataType, Float64Type, Int8Type, Int64Type};
use foldhash::{HashSet, HashSetExt};
use serde::{Deserialize, Serialize};

use crate::convert::{HeldColumn, SpanColumns};
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

/// Distinct values of one type of a tag, in order (serialised as a sorted
/// array of strings). Built as a tree; [`pack`](Self::pack)ed once its
/// block is written into one sorted string buffer, at about a quarter of
/// the memory: the catalog holds the summaries of every block.
#[derive(Debug, Clone)]
pub struct ValueSet(ValueSetRepr);

#[derive(Debug, Clone)]
enum ValueSetRepr {
    Open(BTreeSet<String>),
    /// Value `i` is `bytes[ends[i - 1]..ends[i]]` (from 0 for the first).
    Packed { bytes: Box<str>, ends: Box<[u32]> },
}

impl Default for ValueSet {
    fn default() -> Self {
        Self(ValueSetRepr::Open(BTreeSet::new()))
    }
}

impl ValueSet {
    /// Number of values.
    pub fn len(&self) -> usize {
        match &self.0 {
            ValueSetRepr::Open(set) => set.len(),
            ValueSetRepr::Packed { ends, .. } => ends.len(),
        }
    }

    /// True when there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `value` is one of the values.
    pub fn contains(&self, value: &str) -> bool {
        match &self.0 {
            ValueSetRepr::Open(set) => set.contains(value),
            ValueSetRepr::Packed { bytes, ends } => {
                let get = |i: usize| &bytes[if i == 0 { 0 } else { ends[i - 1] as usize }..ends[i] as usize];
                let (mut low, mut high) = (0, ends.len());
                while low < high {
                    let mid = (low + high) / 2;
                    match get(mid).cmp(value) {
                        std::cmp::Ordering::Less => low = mid + 1,
                        std::cmp::Ordering::Greater => high = mid,
                        std::cmp::Ordering::Equal => return true,
                    }
                }
                false
            }
        }
    }

    /// The values in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        let (open, packed) = match &self.0 {
            ValueSetRepr::Open(set) => (Some(set.iter().map(String::as_str)), None),
            ValueSetRepr::Packed { bytes, ends } => {
                let starts = std::iter::once(0).chain(ends.iter().copied());
                (None, Some(starts.zip(ends.iter()).map(|(start, &end)| &bytes[start as usize..end as usize])))
            }
        };
        open.into_iter().flatten().chain(packed.into_iter().flatten())
    }

    /// Adds `value` (a packed set opens again).
    fn insert(&mut self, value: &str) {
        if let ValueSetRepr::Packed { .. } = self.0 {
            self.0 = ValueSetRepr::Open(self.iter().map(str::to_owned).collect());
        }
        if let ValueSetRepr::Open(set) = &mut self.0 {
            set.insert(value.to_owned());
        }
    }

    /// Packs the values into one buffer. Values over 4 GiB in all (never
    /// a summary's) stay as they are.
    pub fn pack(&mut self) {
        let ValueSetRepr::Open(set) = &self.0 else { return };
        let mut bytes = String::with_capacity(set.iter().map(String::len).sum());
        let mut ends = Vec::with_capacity(set.len());
        for value in set {
            bytes.push_str(value);
            let Ok(end) = u32::try_from(bytes.len()) else { return };
            ends.push(end);
        }
        self.0 = ValueSetRepr::Packed { bytes: bytes.into_boxed_str(), ends: ends.into_boxed_slice() };
    }
}

impl PartialEq for ValueSet {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl FromIterator<String> for ValueSet {
    fn from_iter<I: IntoIterator<Item = String>>(values: I) -> Self {
        Self(ValueSetRepr::Open(values.into_iter().collect()))
    }
}

impl Serialize for ValueSet {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

/// Read packed: summaries are read from storage for the catalog.
impl<'de> Deserialize<'de> for ValueSet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let mut set: ValueSet = Vec::<String>::deserialize(deserializer)?.into_iter().collect();
        set.pack();
        Ok(set)
    }
}

/// Distinct values of one tag, by value type (`string`, `int`, `float`, `bool`, `keyword`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TagValues {
    pub values: BTreeMap<String, ValueSet>,
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
        let count: usize = self.values.values().map(ValueSet::len).sum();
        let set = self.values.entry(ty.to_owned()).or_default();
        if count >= MAX_VALUES_PER_TAG {
            self.truncated = true;
            return;
        }
        set.insert(value);
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

/// The entries of one map row by content: key bytes and lengths, value
/// bytes and (for strings) lengths. Equal rows hold equal entries in the
/// same order.
#[derive(Clone, Copy)]
struct MapRow<'a> {
    key_offsets: &'a [i32],
    keys: &'a [u8],
    /// Empty for fixed-width values.
    value_offsets: &'a [i32],
    values: &'a [u8],
}

/// Offsets relative to the first one: the lengths of the entries.
fn relative(offsets: &[i32]) -> impl Iterator<Item = i32> + '_ {
    offsets.iter().map(|o| o - offsets.first().copied().unwrap_or(0))
}

impl PartialEq for MapRow<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.keys == other.keys
            && self.values == other.values
            && self.key_offsets.len() == other.key_offsets.len()
            && self.value_offsets.len() == other.value_offsets.len()
            && relative(self.key_offsets).eq(relative(other.key_offsets))
            && relative(self.value_offsets).eq(relative(other.value_offsets))
    }
}

impl Eq for MapRow<'_> {}

impl Hash for MapRow<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.keys.hash(state);
        self.values.hash(state);
        self.key_offsets.len().hash(state);
    }
}

/// The entry ranges of the distinct rows of a map, in the order they first
/// occur; `None` when its values have nulls or a type compared otherwise.
fn distinct_rows(map: &MapArray) -> Option<Vec<(usize, usize)>> {
    let keys = map.keys().as_string_opt::<i32>()?;
    let values = map.values();
    if keys.null_count() > 0 || values.null_count() > 0 {
        return None;
    }
    let (value_offsets, value_bytes, width): (&[i32], &[u8], usize) = match values.data_type() {
        DataType::Utf8 => {
            let strings = values.as_string::<i32>();
            (strings.value_offsets(), strings.value_data(), 0)
        }
        DataType::Int64 => (&[], values.as_primitive::<Int64Type>().values().inner().as_slice(), 8),
        DataType::Float64 => (&[], values.as_primitive::<Float64Type>().values().inner().as_slice(), 8),
        _ => return None,
    };
    let (key_offsets, key_bytes) = (keys.value_offsets(), keys.value_data());
    let offsets = map.value_offsets();
    let mut seen: HashSet<MapRow<'_>> = HashSet::new();
    let mut rows = Vec::new();
    let mut previous: Option<MapRow<'_>> = None;
    for row in 0..map.len() {
        let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
        let row_values = if width == 0 {
            let offsets = &value_offsets[start..=end];
            (offsets, &value_bytes[offsets[0] as usize..offsets[end - start] as usize])
        } else {
            (&[][..], &value_bytes[start * width..end * width])
        };
        let key_offsets = &key_offsets[start..=end];
        let content = MapRow {
            key_offsets,
            keys: &key_bytes[key_offsets[0] as usize..key_offsets[end - start] as usize],
            value_offsets: row_values.0,
            values: row_values.1,
        };
        // Spans of one resource often follow each other (those of a trace in
        // one service): comparing with the row before (in cache) skips the
        // hash lookup.
        if previous.as_ref() == Some(&content) {
            continue;
        }
        previous = Some(content);
        if seen.insert(content) {
            rows.push((start, end));
        }
    }
    Some(rows)
}

/// Column `name` of `spans` as held; an error when not held.
fn held<'a>(spans: &'a impl SpanColumns, name: &str) -> Result<HeldColumn<'a>> {
    spans.held(column_index(name)).ok_or_else(|| Error::internal(format!("spans hold no {name} column")))
}

/// Which rows of a map column to summarise.
#[derive(Clone, Copy)]
enum MapRows {
    All,
    /// Each distinct row once (resource and scope attributes held per span,
    /// the same on every span of a resource).
    Distinct,
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

    /// Adds the entries of `rows` of a map column. Every distinct entry
    /// goes through the summary's ordered maps once, in the order it first occurs.
    fn add_map(&mut self, scope: &str, map: &MapArray, suffix: &str, rows: MapRows) {
        let keys = map.keys().as_string::<i32>();
        let values = map.values();
        let offsets = map.value_offsets();
        let whole = || vec![(offsets[0] as usize, offsets[map.len()] as usize)];
        let rows = match rows {
            MapRows::All => whole(),
            MapRows::Distinct => distinct_rows(map).unwrap_or_else(whole),
        };
        let entries = rows.into_iter().flat_map(|(start, end)| start..end);
        let Some(ty) = typed_suffix(suffix) else {
            // Values of other types are not summarised: names only.
            let mut seen: HashSet<&str> = HashSet::new();
            for i in entries {
                let key = keys.value(i);
                if seen.insert(key) {
                    self.tag(scope, key);
                }
            }
            return;
        };
        match values.data_type() {
            DataType::Utf8 => {
                let strings = values.as_string::<i32>();
                let value = |i| strings.is_valid(i).then(|| strings.value(i));
                self.add_entries(scope, ty, keys, entries, value, Cow::Borrowed);
            }
            DataType::Int64 => {
                let ints = values.as_primitive::<Int64Type>();
                let value = |i| ints.is_valid(i).then(|| ints.value(i));
                self.add_entries(scope, ty, keys, entries, value, |v| Cow::Owned(v.to_string()));
            }
            DataType::Float64 => {
                // By bits: equal bits render equally (distinct bits may too; inserting is idempotent).
                let floats = values.as_primitive::<Float64Type>();
                let value = |i| floats.is_valid(i).then(|| floats.value(i).to_bits());
                self.add_entries(scope, ty, keys, entries, value, |v| Cow::Owned(f64::from_bits(v).to_string()));
            }
            DataType::Boolean => {
                let bools = values.as_boolean();
                let value = |i| bools.is_valid(i).then(|| bools.value(i));
                self.add_entries(scope, ty, keys, entries, value, |v| Cow::Owned(v.to_string()));
            }
            _ => self.add_entries(scope, ty, keys, entries, |_| None::<()>, |_| Cow::Borrowed("")),
        }
    }

    /// Adds map entries `entries` (indices into `keys`), each distinct
    /// (key, value) once: `value` reads an entry's value without rendering
    /// it, `render` renders a new one.
    fn add_entries<'a, V: Hash + Eq + Copy>(
        &mut self,
        scope: &str,
        ty: &str,
        keys: &'a StringArray,
        entries: impl Iterator<Item = usize>,
        value: impl Fn(usize) -> Option<V>,
        render: impl Fn(V) -> Cow<'a, str>,
    ) {
        let mut seen: HashSet<(&str, Option<V>)> = HashSet::new();
        for i in entries {
            let entry = (keys.value(i), value(i));
            if seen.insert(entry) {
                let tag = self.tag(scope, entry.0);
                if let Some(v) = entry.1 {
                    tag.insert(ty, &render(v));
                }
            }
        }
    }

    fn add_attr_maps(&mut self, scope: &str, columns: &[&ArrayRef], rows: MapRows) -> Result<()> {
        for (column, suffix) in columns.iter().zip(ATTR_MAP_SUFFIXES) {
            let map = column.as_map_opt().ok_or_else(|| Error::internal("attribute column is not a map"))?;
            self.add_map(scope, map, suffix, rows);
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

    /// Adds the intrinsic keyword `name` of an Int8 enum column: value `v`
    /// is `names[v]`, out of range the first name. Each distinct value once.
    fn add_keywords(&mut self, name: &str, column: &ArrayRef, names: &[&str]) {
        let mut seen = [false; 256];
        for &v in column.as_primitive::<Int8Type>().values() {
            let slot = &mut seen[v as u8 as usize];
            if !*slot {
                *slot = true;
                let keyword = names.get(v as usize).copied().unwrap_or(names[0]);
                self.tag(SCOPE_INTRINSIC, name).insert("keyword", keyword);
            }
        }
    }

    /// Summarises a batch of prepared spans (trace-level columns filled).
    pub fn from_batch(batch: &RecordBatch) -> Result<Self> {
        let mut summary = TagSummary::default();
        summary.add_spans(batch)?;
        let column = |name: &str| batch.column(column_index(name));
        summary.add_trace_roots(column(col::TRACE_ROOT_NAME), column(col::TRACE_ROOT_SERVICE));
        Ok(summary)
    }

    /// Adds everything of some spans but the trace-level root name and
    /// service, which only prepared batches hold (see [`Self::add_trace_roots`]).
    pub fn add_spans(&mut self, spans: &impl SpanColumns) -> Result<()> {
        self.add_resources(spans)?;
        self.add_span_tags(spans)
    }

    /// Adds the resource and instrumentation-scope attributes of some
    /// spans: each scope's row once where they are held once per scope
    /// ([`ReceivedSpans`](crate::convert::ReceivedSpans)), otherwise each
    /// distinct row.
    pub fn add_resources(&mut self, spans: &impl SpanColumns) -> Result<()> {
        let column = |name: &str| held(spans, name);
        let map_rows = if column(col::SCOPE_NAME)?.rows.is_some() { MapRows::All } else { MapRows::Distinct };
        for (prefix, scope) in [(col::RESOURCE_ATTRS, SCOPE_RESOURCE), (col::SCOPE_ATTRS, SCOPE_INSTRUMENTATION)] {
            let maps: Vec<&ArrayRef> =
                ATTR_MAP_SUFFIXES.iter().map(|s| Ok(column(&format!("{prefix}_{s}"))?.array)).collect::<Result<_>>()?;
            self.add_attr_maps(scope, &maps, map_rows)?;
        }
        self.add_dedicated(AttrScope::Resource, |name| Ok(column(name)?.array.clone()))
    }

    /// Adds everything of some spans but their resource and scope
    /// attributes ([`Self::add_resources`]) and trace-level columns.
    pub fn add_span_tags(&mut self, spans: &impl SpanColumns) -> Result<()> {
        let column = |name: &str| held(spans, name).map(|c| c.array);
        let maps: Vec<&ArrayRef> = ATTR_MAP_SUFFIXES.iter().map(|s| column(&format!("{}_{s}", col::SPAN_ATTRS))).collect::<Result<_>>()?;
        self.add_attr_maps(SCOPE_SPAN, &maps, MapRows::All)?;
        self.add_dedicated(AttrScope::Span, |name| Ok(column(name)?.clone()))?;
        for (list, scope) in [(col::EVENTS, SCOPE_EVENT), (col::LINKS, SCOPE_LINK)] {
            let items: &StructArray = column(list)?.as_list::<i32>().values().as_struct();
            let maps: Vec<&ArrayRef> = ATTR_MAP_SUFFIXES
                .iter()
                .map(|s| items.column_by_name(&format!("{}_{s}", col::ATTRS)).ok_or_else(|| Error::internal("no attrs")))
                .collect::<Result<_>>()?;
            self.add_attr_maps(scope, &maps, MapRows::All)?;
            if scope == SCOPE_EVENT
                && let Some(names) = items.column_by_name(col::NAME)
            {
                self.add_strings(SCOPE_INTRINSIC, "event:name", "string", names);
            }
        }
        self.add_strings(SCOPE_INTRINSIC, "name", "string", column(col::NAME)?);
        self.add_strings(SCOPE_INTRINSIC, "statusMessage", "string", column(col::STATUS_MESSAGE)?);
        self.add_strings(SCOPE_INTRINSIC, "instrumentation:name", "string", column(col::SCOPE_NAME)?);
        self.add_keywords("status", column(col::STATUS_CODE)?, &["unset", "ok", "error"]);
        self.add_keywords("kind", column(col::KIND)?, &["unspecified", "internal", "server", "client", "producer", "consumer"]);
        Ok(())
    }

    /// Adds the dedicated attribute columns of `attr_scope`, read by `column`.
    fn add_dedicated(&mut self, attr_scope: AttrScope, column: impl Fn(&str) -> Result<ArrayRef>) -> Result<()> {
        for d in DEDICATED_COLUMNS.iter().filter(|d| d.scope == attr_scope) {
            let scope = match d.scope {
                AttrScope::Span => SCOPE_SPAN,
                AttrScope::Resource => SCOPE_RESOURCE,
            };
            let values = &column(d.column)?;
            match values.data_type() {
                DataType::Int64 => {
                    // Each distinct value once, in the order it first occurs.
                    let mut seen: HashSet<i64> = HashSet::new();
                    for v in values.as_primitive::<Int64Type>().iter().flatten() {
                        if seen.insert(v) {
                            self.tag(scope, d.key).insert("int", &v.to_string());
                        }
                    }
                }
                DataType::Utf8 => self.add_strings(scope, d.key, "string", values),
                _ => {
                    for i in 0..values.len() {
                        if let Some(v) = render(values, i) {
                            self.tag(scope, d.key).insert("string", &v);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Adds the trace-level root names and services (columns
    /// `trace_root_name` and `trace_root_service` of prepared spans).
    pub fn add_trace_roots(&mut self, root_names: &ArrayRef, root_services: &ArrayRef) {
        self.add_strings(SCOPE_INTRINSIC, "rootName", "string", root_names);
        self.add_strings(SCOPE_INTRINSIC, "rootServiceName", "string", root_services);
    }

    /// Packs every value set (see [`ValueSet::pack`]), for a summary kept
    /// as it is from now on.
    pub fn pack(&mut self) {
        self.scopes.values_mut().flat_map(|tags| tags.values_mut()).flat_map(|tag| tag.values.values_mut()).for_each(ValueSet::pack);
    }

    /// Adds everything of `other`.
    pub fn merge(&mut self, other: &TagSummary) {
        for (scope, tags) in &other.scopes {
            for (name, values) in tags {
                let mine = self.tag(scope, name);
                mine.truncated |= values.truncated;
                for (ty, set) in &values.values {
                    for v in set.iter() {
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
    use crate::convert::{convert_request, resource_spans_to_batch};

    fn kv(k: &str, v: Value) -> KeyValue {
        KeyValue { key: k.into(), value: Some(AnyValue { value: Some(v) }), ..Default::default() }
    }


    #[test]
    fn a_packed_value_set_answers_as_the_open_one_and_opens_again_to_take_more() {
        let values = ["", "a", "ab", "b", "http://x/y", "é"];
        let open: ValueSet = values.iter().rev().map(|v| (*v).to_owned()).collect();
        let mut packed = open.clone();
        packed.pack();
        assert!(matches!(packed.0, ValueSetRepr::Packed { .. }));
        assert_eq!(packed, open);
        assert_eq!(packed.iter().collect::<Vec<_>>(), values);
        for probe in ["", "a", "ab", "aa", "b", "c", "é", "http://x/y", "http://x"] {
            assert_eq!(packed.contains(probe), values.contains(&probe), "{probe:?}");
        }
        let json = serde_json::to_string(&open).unwrap();
        assert_eq!(json, serde_json::to_string(&packed).unwrap());
        let read: ValueSet = serde_json::from_str(&json).unwrap();
        assert!(matches!(read.0, ValueSetRepr::Packed { .. }), "read packed");
        assert_eq!(read, open);
        packed.insert("aa");
        assert_eq!(packed.len(), values.len() + 1);
        assert!(packed.contains("aa") && packed.contains("ab"));
        assert!(ValueSet::default().is_empty());
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

    /// The summary by the plain rule: every value of every row rendered
    /// and inserted in row order (what [`TagSummary::from_batch`] must equal).
    fn reference(batch: &RecordBatch) -> TagSummary {
        let mut summary = TagSummary::default();
        let column = |name: &str| batch.column(column_index(name)).clone();
        let maps = |summary: &mut TagSummary, scope: &str, columns: Vec<ArrayRef>| {
            for (column, suffix) in columns.iter().zip(ATTR_MAP_SUFFIXES) {
                let map = column.as_map();
                for i in 0..map.keys().len() {
                    let value = typed_suffix(suffix).zip(render(map.values(), i));
                    let tag = summary.tag(scope, map.keys().as_string::<i32>().value(i));
                    if let Some((ty, v)) = value {
                        tag.insert(ty, &v);
                    }
                }
            }
        };
        for (prefix, scope) in
            [(col::SPAN_ATTRS, SCOPE_SPAN), (col::RESOURCE_ATTRS, SCOPE_RESOURCE), (col::SCOPE_ATTRS, SCOPE_INSTRUMENTATION)]
        {
            maps(&mut summary, scope, ATTR_MAP_SUFFIXES.iter().map(|s| column(&format!("{prefix}_{s}"))).collect());
        }
        for d in DEDICATED_COLUMNS {
            let scope = if matches!(d.scope, AttrScope::Span) { SCOPE_SPAN } else { SCOPE_RESOURCE };
            let values = column(d.column);
            for i in 0..values.len() {
                if let Some(v) = render(&values, i) {
                    let ty = if values.data_type() == &DataType::Int64 { "int" } else { "string" };
                    summary.tag(scope, d.key).insert(ty, &v);
                }
            }
        }
        for (list, scope) in [(col::EVENTS, SCOPE_EVENT), (col::LINKS, SCOPE_LINK)] {
            let items = column(list).as_list::<i32>().values().as_struct().clone();
            maps(&mut summary, scope, ATTR_MAP_SUFFIXES.iter().map(|s| items.column_by_name(&format!("attrs_{s}")).unwrap().clone()).collect());
            if scope == SCOPE_EVENT {
                summary.add_strings(SCOPE_INTRINSIC, "event:name", "string", items.column_by_name(col::NAME).unwrap());
            }
        }
        for (name, c) in [
            ("name", col::NAME),
            ("statusMessage", col::STATUS_MESSAGE),
            ("rootName", col::TRACE_ROOT_NAME),
            ("rootServiceName", col::TRACE_ROOT_SERVICE),
            ("instrumentation:name", col::SCOPE_NAME),
        ] {
            summary.add_strings(SCOPE_INTRINSIC, name, "string", &column(c));
        }
        for (name, c, names) in [
            ("status", col::STATUS_CODE, &["unset", "ok", "error"][..]),
            ("kind", col::KIND, &["unspecified", "internal", "server", "client", "producer", "consumer"][..]),
        ] {
            for &v in column(c).as_primitive::<Int8Type>().values() {
                summary.tag(SCOPE_INTRINSIC, name).insert("keyword", names.get(v as usize).copied().unwrap_or(names[0]));
            }
        }
        summary
    }

    #[test]
    fn summary_of_distinct_rows_and_values_equals_the_plain_one_even_when_truncated() {
        use opentelemetry_proto::tonic::common::v1::{ArrayValue, InstrumentationScope};
        use opentelemetry_proto::tonic::trace::v1::span::Event;
        // Resources that repeat, and two whose entries hold the same bytes split differently.
        let resource = |attributes: Vec<KeyValue>| Some(Resource { attributes, ..Default::default() });
        let resources = [
            resource(vec![kv("service.name", Value::StringValue("a".into())), kv("host", Value::StringValue("ab".into()))]),
            resource(vec![kv("service.name", Value::StringValue("a".into())), kv("hos", Value::StringValue("tab".into()))]),
            resource(vec![kv("cpu", Value::IntValue(4)), kv("load", Value::DoubleValue(0.5)), kv("up", Value::BoolValue(true))]),
            resource(vec![kv("cpu", Value::IntValue(8)), kv("load", Value::DoubleValue(-0.0)), kv("x", Value::ArrayValue(ArrayValue::default()))]),
        ];
        let rs: Vec<ResourceSpans> = (0..12usize)
            .map(|r| ResourceSpans {
                resource: resources[r % 4].clone(),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope { name: format!("lib{}", r % 3), attributes: vec![kv("v", Value::IntValue(r as i64 % 2))], ..Default::default() }),
                    spans: (0..150usize)
                        .map(|i| Span {
                            trace_id: vec![1 + (i % 7) as u8; 16],
                            span_id: [(r as u64) << 32 | i as u64 + 1].map(u64::to_be_bytes)[0].to_vec(),
                            name: format!("op{}", i % 5),
                            kind: (i % 7) as i32,
                            attributes: vec![
                                // Beyond the cap of distinct values: which are kept depends on order.
                                kv("n", Value::IntValue((r * 150 + i) as i64)),
                                kv("http.status_code", Value::IntValue(200 + (i % 3) as i64)),
                                kv("http.method", Value::StringValue(["GET", "PUT"][i % 2].into())),
                                kv("f", Value::DoubleValue(i as f64 / 4.0)),
                                kv("b", Value::BoolValue(i % 3 == 0)),
                                kv(&format!("k{}", i % 4), Value::StringValue(format!("v{}", i % 6))),
                            ],
                            events: vec![Event { name: format!("e{}", i % 2), attributes: vec![kv("ev", Value::IntValue(1))], ..Default::default() }],
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect();
        let (received, _) = convert_request(&rs).unwrap();
        let batch = crate::block::prepare_block(std::slice::from_ref(&received)).unwrap();
        let summary = TagSummary::from_batch(&batch).unwrap();
        assert_eq!(summary, reference(&batch));
        // Summarised from the spans as received (as the ingester does), only
        // which values a truncated tag kept may differ.
        let mut from_received = TagSummary::default();
        from_received.add_spans(&received).unwrap();
        let column = |name: &str| batch.column(column_index(name));
        from_received.add_trace_roots(column(col::TRACE_ROOT_NAME), column(col::TRACE_ROOT_SERVICE));
        let without_truncated_values = |mut s: TagSummary| {
            s.scopes.values_mut().flat_map(|tags| tags.values_mut()).filter(|t| t.truncated).for_each(|t| t.values.clear());
            s
        };
        assert_eq!(without_truncated_values(from_received), without_truncated_values(summary.clone()));
        assert!(summary.scopes["span"]["n"].truncated, "the cap was reached");
        assert!(summary.scopes["resource"]["host"].values["string"].contains("ab"));
        assert!(summary.scopes["resource"]["hos"].values["string"].contains("tab"), "same bytes, other split: another row");
        assert_eq!(summary.scopes["resource"]["load"].values["float"].iter().collect::<Vec<_>>(), ["-0", "0.5"]);
        assert_eq!(summary.scopes["instrumentation"]["v"].values["int"].len(), 2);
    }

    #[test]
    fn distinct_rows_tell_apart_rows_of_equal_bytes_split_differently() {
        use arrow::array::{MapBuilder, StringBuilder};
        let mut builder = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        // The first row repeats right after itself and again later.
        for row in [
            [("ab", "c"), ("d", "e")],
            [("ab", "c"), ("d", "e")],
            [("a", "bc"), ("d", "e")],
            [("ab", "c"), ("d", "e")],
            [("ab", "c"), ("de", "")],
        ] {
            for (k, v) in row {
                builder.keys().append_value(k);
                builder.values().append_value(v);
            }
            builder.append(true).unwrap();
        }
        builder.append(true).unwrap();
        builder.append(true).unwrap();
        // Equal key bytes and equal value bytes, split at other places:
        // only the entry offsets tell these rows apart.
        for row in [[("ab", "x"), ("c", "y")], [("a", "x"), ("bc", "y")], [("ab", "xy"), ("c", "")], [("ab", "x"), ("c", "y")]] {
            for (k, v) in row {
                builder.keys().append_value(k);
                builder.values().append_value(v);
            }
            builder.append(true).unwrap();
        }
        let map = builder.finish();
        assert_eq!(distinct_rows(&map), Some(vec![(0, 2), (4, 6), (8, 10), (10, 10), (10, 12), (12, 14), (14, 16)]));
    }
}
