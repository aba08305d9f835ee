//! The span table: one Arrow schema, one row per span (DESIGN §1).
//!
//! Every protocol decodes into this schema; the WAL, the head block and the
//! Parquet blocks all hold it unchanged, so one `TableProvider` can read them
//! together. Bump [`SCHEMA_VERSION`] on any incompatible change: it is written
//! into every block's `meta.json`.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

/// Version of [`span_schema`], recorded in every block's meta. 2 added
/// typed instrumentation-scope attribute maps and `child_count`.
pub const SCHEMA_VERSION: u32 = 2;

/// Column names of the span table.
pub mod col {
    pub const TRACE_ID: &str = "trace_id";
    pub const SPAN_ID: &str = "span_id";
    pub const PARENT_SPAN_ID: &str = "parent_span_id";
    pub const TRACE_STATE: &str = "trace_state";
    pub const FLAGS: &str = "flags";
    pub const NAME: &str = "name";
    pub const KIND: &str = "kind";
    pub const START_UNIX_NANO: &str = "start_unix_nano";
    pub const DURATION_NANO: &str = "duration_nano";
    pub const STATUS_CODE: &str = "status_code";
    pub const STATUS_MESSAGE: &str = "status_message";
    pub const DROPPED_ATTRIBUTES_COUNT: &str = "dropped_attributes_count";
    pub const DROPPED_EVENTS_COUNT: &str = "dropped_events_count";
    pub const DROPPED_LINKS_COUNT: &str = "dropped_links_count";
    pub const SERVICE_NAME: &str = "service_name";
    pub const SPAN_ATTRS: &str = "span_attrs";
    pub const RESOURCE_ATTRS: &str = "resource_attrs";
    pub const RESOURCE_DROPPED_ATTRIBUTES_COUNT: &str = "resource_dropped_attributes_count";
    pub const RESOURCE_SCHEMA_URL: &str = "resource_schema_url";
    pub const RESOURCE_ENTITY_REFS: &str = "resource_entity_refs";
    pub const SCOPE_NAME: &str = "scope_name";
    pub const SCOPE_VERSION: &str = "scope_version";
    pub const SCOPE_ATTRS: &str = "scope_attrs";
    pub const SCOPE_DROPPED_ATTRIBUTES_COUNT: &str = "scope_dropped_attributes_count";
    pub const SCOPE_SCHEMA_URL: &str = "scope_schema_url";
    pub const EVENTS: &str = "events";
    pub const LINKS: &str = "links";
    pub const NESTED_SET_LEFT: &str = "nested_set_left";
    pub const NESTED_SET_RIGHT: &str = "nested_set_right";
    pub const NESTED_SET_PARENT: &str = "nested_set_parent";
    /// Direct children of the span present in its trace.
    pub const CHILD_COUNT: &str = "child_count";
    pub const TRACE_ROOT_SERVICE: &str = "trace_root_service";
    pub const TRACE_ROOT_NAME: &str = "trace_root_name";
    pub const TRACE_START_UNIX_NANO: &str = "trace_start_unix_nano";
    pub const TRACE_DURATION_NANO: &str = "trace_duration_nano";

    // Fields of the `events` and `links` list elements.
    pub const TIME_UNIX_NANO: &str = "time_unix_nano";
    pub const ATTRS: &str = "attrs";
}

/// A span's place in block order (trace id, start, span id; ids compared
/// as bytes, starts as the Int64 column holds them), as one integer key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct BlockOrder {
    pub trace_id: u128,
    pub start: i64,
    pub span_id: u64,
}

impl BlockOrder {
    /// The key of a span with a 16-byte trace id and an 8-byte span id.
    pub fn of(trace_id: &[u8], start: i64, span_id: &[u8]) -> crate::error::Result<Self> {
        let invalid = || crate::error::Error::internal("trace or span id of the wrong width");
        Ok(Self {
            trace_id: u128::from_be_bytes(trace_id.try_into().map_err(|_| invalid())?),
            start,
            span_id: u64::from_be_bytes(span_id.try_into().map_err(|_| invalid())?),
        })
    }
}

/// Which attribute list a key lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrScope {
    Span,
    Resource,
}

/// Value type of a dedicated attribute column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedicatedType {
    Str,
    Int,
}

/// A well-known attribute promoted to its own column. The attribute is
/// stored there (and not in the maps) when its value has the column's type.
#[derive(Debug, Clone, Copy)]
pub struct DedicatedColumn {
    pub column: &'static str,
    pub scope: AttrScope,
    pub key: &'static str,
    pub data_type: DedicatedType,
}

const fn dedicated(
    column: &'static str,
    scope: AttrScope,
    key: &'static str,
    data_type: DedicatedType,
) -> DedicatedColumn {
    DedicatedColumn { column, scope, key, data_type }
}

/// Columns computed per trace when a block is cut or compacted (nested
/// sets and trace-level summaries); not part of an OTLP span.
pub const TRACE_DERIVED_COLUMNS: [&str; 8] = [
    col::NESTED_SET_LEFT,
    col::NESTED_SET_RIGHT,
    col::NESTED_SET_PARENT,
    col::CHILD_COUNT,
    col::TRACE_ROOT_SERVICE,
    col::TRACE_ROOT_NAME,
    col::TRACE_START_UNIX_NANO,
    col::TRACE_DURATION_NANO,
];

/// The dedicated attribute columns, in schema order.
pub const DEDICATED_COLUMNS: &[DedicatedColumn] = {
    use AttrScope::*;
    use DedicatedType::*;
    &[
        dedicated(col::SERVICE_NAME, Resource, "service.name", Str),
        dedicated("service_namespace", Resource, "service.namespace", Str),
        dedicated("deployment_environment", Resource, "deployment.environment", Str),
        dedicated("k8s_cluster_name", Resource, "k8s.cluster.name", Str),
        dedicated("k8s_namespace_name", Resource, "k8s.namespace.name", Str),
        dedicated("k8s_pod_name", Resource, "k8s.pod.name", Str),
        dedicated("k8s_container_name", Resource, "k8s.container.name", Str),
        dedicated("k8s_deployment_name", Resource, "k8s.deployment.name", Str),
        dedicated("http_method", Span, "http.method", Str),
        dedicated("http_request_method", Span, "http.request.method", Str),
        dedicated("http_route", Span, "http.route", Str),
        dedicated("http_url", Span, "http.url", Str),
        dedicated("url_full", Span, "url.full", Str),
        dedicated("http_status_code", Span, "http.status_code", Int),
        dedicated("http_response_status_code", Span, "http.response.status_code", Int),
        dedicated("db_system", Span, "db.system", Str),
    ]
};

/// Suffixes of the typed attribute maps, in schema order: a `{prefix}_{suffix}`
/// column per entry. `other` holds arrays, kvlists, bytes and empty values as
/// OTLP/JSON `AnyValue`s.
pub const ATTR_MAP_SUFFIXES: [&str; 5] = ["str", "int", "float", "bool", "other"];

/// Value types of the typed maps, parallel to [`ATTR_MAP_SUFFIXES`].
pub fn attr_map_value_types() -> [DataType; 5] {
    [DataType::Utf8, DataType::Int64, DataType::Float64, DataType::Boolean, DataType::Utf8]
}

/// `Map<Utf8, value>` with arrow-rs' default entry names, as `MapBuilder` makes it.
pub fn map_type(value: DataType) -> DataType {
    let entries = Field::new(
        "entries",
        DataType::Struct(Fields::from(vec![
            Field::new("keys", DataType::Utf8, false),
            Field::new("values", value, true),
        ])),
        false,
    );
    DataType::Map(Arc::new(entries), false)
}

/// The five typed attribute map fields named `{prefix}_{suffix}`.
pub fn attr_map_fields(prefix: &str) -> Vec<Field> {
    ATTR_MAP_SUFFIXES
        .iter()
        .zip(attr_map_value_types())
        .map(|(suffix, value)| Field::new(format!("{prefix}_{suffix}"), map_type(value), true))
        .collect()
}

fn event_fields() -> Fields {
    let mut fields = vec![
        Field::new(col::TIME_UNIX_NANO, DataType::Int64, false),
        Field::new(col::NAME, DataType::Utf8, false),
        Field::new(col::DROPPED_ATTRIBUTES_COUNT, DataType::UInt32, false),
    ];
    fields.extend(attr_map_fields(col::ATTRS));
    Fields::from(fields)
}

fn link_fields() -> Fields {
    let mut fields = vec![
        Field::new(col::TRACE_ID, DataType::FixedSizeBinary(16), false),
        Field::new(col::SPAN_ID, DataType::FixedSizeBinary(8), false),
        Field::new(col::TRACE_STATE, DataType::Utf8, true),
        Field::new(col::FLAGS, DataType::UInt32, false),
        Field::new(col::DROPPED_ATTRIBUTES_COUNT, DataType::UInt32, false),
    ];
    fields.extend(attr_map_fields(col::ATTRS));
    Fields::from(fields)
}

/// Element type of the `events` list.
pub fn event_struct_type() -> DataType {
    DataType::Struct(event_fields())
}

/// Element type of the `links` list.
pub fn link_struct_type() -> DataType {
    DataType::Struct(link_fields())
}

/// The list item field used for `events` and `links` (arrow-rs' default name).
pub fn list_item_field(item: DataType) -> Arc<Field> {
    Arc::new(Field::new("item", item, true))
}

static SPAN_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    use DataType::*;
    let mut fields = vec![
        Field::new(col::TRACE_ID, FixedSizeBinary(16), false),
        Field::new(col::SPAN_ID, FixedSizeBinary(8), false),
        Field::new(col::PARENT_SPAN_ID, FixedSizeBinary(8), true),
        Field::new(col::TRACE_STATE, Utf8, true),
        Field::new(col::FLAGS, UInt32, false),
        Field::new(col::NAME, Utf8, false),
        Field::new(col::KIND, Int8, false),
        Field::new(col::START_UNIX_NANO, Int64, false),
        Field::new(col::DURATION_NANO, Int64, false),
        Field::new(col::STATUS_CODE, Int8, false),
        Field::new(col::STATUS_MESSAGE, Utf8, true),
        Field::new(col::DROPPED_ATTRIBUTES_COUNT, UInt32, false),
        Field::new(col::DROPPED_EVENTS_COUNT, UInt32, false),
        Field::new(col::DROPPED_LINKS_COUNT, UInt32, false),
    ];
    for d in DEDICATED_COLUMNS {
        let ty = match d.data_type {
            DedicatedType::Str => Utf8,
            DedicatedType::Int => Int64,
        };
        fields.push(Field::new(d.column, ty, true));
    }
    fields.extend(attr_map_fields(col::SPAN_ATTRS));
    fields.extend(attr_map_fields(col::RESOURCE_ATTRS));
    fields.extend(attr_map_fields(col::SCOPE_ATTRS));
    fields.extend([
        Field::new(col::RESOURCE_DROPPED_ATTRIBUTES_COUNT, UInt32, false),
        Field::new(col::RESOURCE_SCHEMA_URL, Utf8, true),
        Field::new(col::RESOURCE_ENTITY_REFS, Utf8, true),
        Field::new(col::SCOPE_NAME, Utf8, true),
        Field::new(col::SCOPE_VERSION, Utf8, true),
        Field::new(col::SCOPE_DROPPED_ATTRIBUTES_COUNT, UInt32, false),
        Field::new(col::SCOPE_SCHEMA_URL, Utf8, true),
        Field::new(col::EVENTS, List(list_item_field(event_struct_type())), false),
        Field::new(col::LINKS, List(list_item_field(link_struct_type())), false),
        Field::new(col::NESTED_SET_LEFT, Int32, true),
        Field::new(col::NESTED_SET_RIGHT, Int32, true),
        Field::new(col::NESTED_SET_PARENT, Int32, true),
        Field::new(col::CHILD_COUNT, Int32, true),
        Field::new(col::TRACE_ROOT_SERVICE, Utf8, true),
        Field::new(col::TRACE_ROOT_NAME, Utf8, true),
        Field::new(col::TRACE_START_UNIX_NANO, Int64, true),
        Field::new(col::TRACE_DURATION_NANO, Int64, true),
    ]);
    Arc::new(Schema::new(fields))
});

/// The Arrow schema of the span table (see the module docs).
pub fn span_schema() -> SchemaRef {
    SPAN_SCHEMA.clone()
}

/// Index of a column in [`span_schema`]; panics on an unknown name, which is
/// a programming error (names come from [`col`]).
pub fn column_index(name: &str) -> usize {
    SPAN_SCHEMA.index_of(name).unwrap_or_else(|_| panic!("span schema has no column {name}"))
}

/// How often a column of [`span_schema`] holds a value: what a head keeps
/// once per span and what once per resource and instrumentation scope
/// (see [`ReceivedSpans`](crate::convert::ReceivedSpans)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnLevel {
    /// A value of the span itself.
    Span,
    /// The same value on every span of one resource and scope: the
    /// resource's and scope's attributes, names, schema URLs and counts.
    Scope,
    /// Computed per trace when a block is cut ([`TRACE_DERIVED_COLUMNS`]).
    Trace,
}

/// The level of a column, by name.
fn level_of(name: &str) -> ColumnLevel {
    let resource_dedicated = DEDICATED_COLUMNS.iter().any(|d| d.column == name && d.scope == AttrScope::Resource);
    let scope_columns = [
        col::RESOURCE_DROPPED_ATTRIBUTES_COUNT,
        col::RESOURCE_SCHEMA_URL,
        col::RESOURCE_ENTITY_REFS,
        col::SCOPE_NAME,
        col::SCOPE_VERSION,
        col::SCOPE_DROPPED_ATTRIBUTES_COUNT,
        col::SCOPE_SCHEMA_URL,
    ];
    let attr_map = |prefix: &str| ATTR_MAP_SUFFIXES.iter().any(|s| name.strip_prefix(prefix).and_then(|n| n.strip_prefix('_')) == Some(*s));
    if TRACE_DERIVED_COLUMNS.contains(&name) {
        ColumnLevel::Trace
    } else if resource_dedicated || scope_columns.contains(&name) || attr_map(col::RESOURCE_ATTRS) || attr_map(col::SCOPE_ATTRS) {
        ColumnLevel::Scope
    } else {
        ColumnLevel::Span
    }
}

/// The span schema split by [`ColumnLevel`].
struct LevelSchemas {
    /// Per column of the span schema: its level and its index in that
    /// level's schema (the trace level has none).
    columns: Vec<(ColumnLevel, usize)>,
    span: SchemaRef,
    scope: SchemaRef,
}

static LEVEL_SCHEMAS: LazyLock<LevelSchemas> = LazyLock::new(|| {
    let (mut span, mut scope, mut columns) = (Vec::new(), Vec::new(), Vec::new());
    for field in SPAN_SCHEMA.fields() {
        let level = level_of(field.name());
        let fields = match level {
            ColumnLevel::Span => &mut span,
            ColumnLevel::Scope => &mut scope,
            ColumnLevel::Trace => {
                columns.push((level, 0));
                continue;
            }
        };
        columns.push((level, fields.len()));
        fields.push(field.clone());
    }
    LevelSchemas { columns, span: Arc::new(Schema::new(span)), scope: Arc::new(Schema::new(scope)) }
});

/// The level of column `index` of [`span_schema`] and its index in
/// [`span_level_schema`] or [`scope_level_schema`] (0 for the trace level).
pub fn column_level(index: usize) -> (ColumnLevel, usize) {
    LEVEL_SCHEMAS.columns[index]
}

/// The span-level columns of [`span_schema`], in its order.
pub fn span_level_schema() -> SchemaRef {
    LEVEL_SCHEMAS.span.clone()
}

/// The scope-level columns of [`span_schema`], in its order.
pub fn scope_level_schema() -> SchemaRef {
    LEVEL_SCHEMAS.scope.clone()
}

/// Rebuilds a batch of an older span schema (WAL segments, blocks) in the
/// current one: missing nullable columns become nulls.
pub fn adapt_to_span_schema(batch: &RecordBatch) -> std::result::Result<RecordBatch, String> {
    let schema = span_schema();
    let columns = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(c) if c.data_type() == field.data_type() => Ok(c.clone()),
            Some(c) => Err(format!("column {} is {} (now {})", field.name(), c.data_type(), field.data_type())),
            None if field.is_nullable() => Ok(arrow::array::new_null_array(field.data_type(), batch.num_rows())),
            None => Err(format!("column {} is missing", field.name())),
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema, columns).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_names_are_unique() {
        let schema = span_schema();
        let mut names: Vec<_> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let total = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), total);
    }

    #[test]
    fn every_column_has_one_level_and_the_level_schemas_cover_the_span_schema() {
        let schema = span_schema();
        let (span, scope) = (span_level_schema(), scope_level_schema());
        let mut trace = 0;
        for (index, field) in schema.fields().iter().enumerate() {
            match column_level(index) {
                (ColumnLevel::Span, i) => assert_eq!(span.field(i), field.as_ref()),
                (ColumnLevel::Scope, i) => assert_eq!(scope.field(i), field.as_ref()),
                (ColumnLevel::Trace, _) => trace += 1,
            }
        }
        assert_eq!(trace, TRACE_DERIVED_COLUMNS.len());
        assert_eq!(span.fields().len() + scope.fields().len() + trace, schema.fields().len());
        // Spot checks of the split.
        for name in [col::SERVICE_NAME, "resource_attrs_str", "scope_attrs_bool", col::SCOPE_NAME, col::RESOURCE_SCHEMA_URL] {
            assert_eq!(column_level(column_index(name)).0, ColumnLevel::Scope, "{name}");
        }
        for name in [col::TRACE_ID, "span_attrs_str", "http_route", col::EVENTS, col::NAME] {
            assert_eq!(column_level(column_index(name)).0, ColumnLevel::Span, "{name}");
        }
    }
}
