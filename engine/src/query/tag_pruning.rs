//! Block pruning by tag summaries. An equality on an attribute (a dedicated
//! column, or an entry of a string or int attribute map) rules out a block
//! whose tag summary lists every value of that attribute and not this one:
//! such a block is not read at all. Statistics cannot do this for map
//! entries (a map's min/max mixes every key), and DataFusion evaluates map
//! access only after decoding the whole map.

use datafusion::common::ScalarValue;
use datafusion::functions::core::getfield::GetFieldFunc;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};

use crate::block::TagSummary;
use crate::block::tags::{SCOPE_INSTRUMENTATION, SCOPE_RESOURCE, SCOPE_SPAN};
use crate::schema::{AttrScope, DEDICATED_COLUMNS, DedicatedType, col};

/// `scope.key = value` for a value of type `ty` (a tag summary's type name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TagEquality {
    scope: &'static str,
    key: String,
    ty: &'static str,
    value: String,
}

impl TagEquality {
    /// Whether spans summarised by `summary` may satisfy the equality: the
    /// summary lists the value, or does not list them all.
    pub(crate) fn may_match(&self, summary: &TagSummary) -> bool {
        let Some(values) = summary.scopes.get(self.scope).and_then(|tags| tags.get(&self.key)) else {
            return false;
        };
        values.truncated || values.values.get(self.ty).is_some_and(|set| set.contains(&self.value))
    }
}

/// The attribute equalities among `filters` (conjuncts, as DataFusion
/// pushes them into a table scan); other filters are ignored.
pub(crate) fn tag_equalities(filters: &[Expr]) -> Vec<TagEquality> {
    filters.iter().filter_map(tag_equality).collect()
}

fn tag_equality(filter: &Expr) -> Option<TagEquality> {
    let Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) = filter else {
        return None;
    };
    let (attribute, literal) = match (left.as_ref(), right.as_ref()) {
        (Expr::Literal(literal, _), attribute) | (attribute, Expr::Literal(literal, _)) => (attribute, literal),
        _ => return None,
    };
    // Rendered as tag summaries render values.
    let (ty, value) = match literal {
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => ("string", s.clone()),
        ScalarValue::Int64(Some(i)) => ("int", i.to_string()),
        _ => return None,
    };
    let (scope, key, column_ty) = attribute_of(attribute)?;
    (ty == column_ty).then_some(TagEquality { scope, key, ty, value })
}

/// `{prefix}_{suffix}[key]`: an entry of a span, resource or scope
/// attribute map, with the tag summary's names for its scope and value type
/// (`None` for the `other` map, whose values summaries do not list by type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MapEntry {
    /// The map column.
    pub column: String,
    pub scope: &'static str,
    pub key: String,
    pub ty: Option<&'static str>,
}

impl MapEntry {
    /// The map entry `expr` reads (`get_field(<map column>, <key>)`), if any.
    pub(crate) fn of(expr: &Expr) -> Option<MapEntry> {
        let Expr::ScalarFunction(function) = expr else { return None };
        if !function.func.inner().is::<GetFieldFunc>() {
            return None;
        }
        let [Expr::Column(map), Expr::Literal(ScalarValue::Utf8(Some(key)), _)] = function.args.as_slice() else {
            return None;
        };
        let (prefix, suffix) = map.name.rsplit_once('_')?;
        let scope = match prefix {
            col::SPAN_ATTRS => SCOPE_SPAN,
            col::RESOURCE_ATTRS => SCOPE_RESOURCE,
            col::SCOPE_ATTRS => SCOPE_INSTRUMENTATION,
            _ => return None,
        };
        let ty = match suffix {
            "str" => Some("string"),
            "int" => Some("int"),
            "float" => Some("float"),
            "bool" => Some("bool"),
            "other" => None,
            _ => return None,
        };
        Some(MapEntry { column: map.name.clone(), scope, key: key.clone(), ty })
    }

    /// Whether any span summarised by `summary` may have this entry.
    pub(crate) fn may_exist(&self, summary: &TagSummary) -> bool {
        let Some(values) = summary.scopes.get(self.scope).and_then(|tags| tags.get(&self.key)) else {
            return false;
        };
        match self.ty {
            Some(ty) => values.truncated || values.values.contains_key(ty),
            None => true,
        }
    }
}

/// Scope, key and value type of an attribute read from a dedicated column
/// or a string or int attribute map.
fn attribute_of(expr: &Expr) -> Option<(&'static str, String, &'static str)> {
    match expr {
        Expr::Column(column) => {
            let dedicated = DEDICATED_COLUMNS.iter().find(|d| d.column == column.name)?;
            let scope = match dedicated.scope {
                AttrScope::Span => SCOPE_SPAN,
                AttrScope::Resource => SCOPE_RESOURCE,
            };
            let ty = match dedicated.data_type {
                DedicatedType::Str => "string",
                DedicatedType::Int => "int",
            };
            Some((scope, dedicated.key.to_owned(), ty))
        }
        _ => {
            let entry = MapEntry::of(expr)?;
            let ty = entry.ty.filter(|ty| ["string", "int"].contains(ty))?;
            Some((entry.scope, entry.key, ty))
        }
    }
}

#[cfg(test)]
mod tests {
    use datafusion::functions::core::expr_fn::get_field;
    use datafusion::logical_expr::{col as column, lit};

    use super::*;
    use crate::block::tags::TagValues;

    fn summary(scope: &str, key: &str, ty: &str, values: &[&str], truncated: bool) -> TagSummary {
        let values = TagValues { values: [(ty.to_owned(), values.iter().map(|v| (*v).to_owned()).collect())].into(), truncated };
        TagSummary { scopes: [(scope.to_owned(), [(key.to_owned(), values)].into())].into() }
    }

    #[test]
    fn equalities_on_dedicated_columns_and_typed_maps_are_found() {
        let filters = [
            get_field(column("span_attrs_str"), "db.operation").eq(lit("INSERT")),
            lit(200i64).eq(get_field(column("resource_attrs_int"), "port")),
            column("http_route").eq(lit("/checkout")),
            column("service_name").eq(lit("cart")),
            // Not equalities on one typed attribute: ignored.
            get_field(column("span_attrs_str"), "a").eq(lit("x")).or(column("http_route").eq(lit("/y"))),
            get_field(column("span_attrs_float"), "f").eq(lit(1.5)),
            get_field(column("span_attrs_str"), "a").not_eq(lit("x")),
            column("name").eq(lit("GET")),
            column("http_status_code").eq(lit("200")),
        ];
        let equalities = tag_equalities(&filters);
        let found: Vec<(&str, &str, &str, &str)> = equalities.iter().map(|e| (e.scope, e.key.as_str(), e.ty, e.value.as_str())).collect();
        assert_eq!(
            found,
            [
                ("span", "db.operation", "string", "INSERT"),
                ("resource", "port", "int", "200"),
                ("span", "http.route", "string", "/checkout"),
                ("resource", "service.name", "string", "cart"),
            ]
        );
    }

    #[test]
    fn map_entries_may_exist_when_listed_with_their_type_or_truncated() {
        let entry = |map: &str| MapEntry::of(&get_field(column(map), "port")).unwrap();
        let expected = MapEntry { column: "resource_attrs_int".into(), scope: "resource", key: "port".into(), ty: Some("int") };
        assert_eq!(entry("resource_attrs_int"), expected);
        assert!(MapEntry::of(&get_field(column("events"), "port")).is_none(), "not an attribute map");
        assert!(entry("resource_attrs_int").may_exist(&summary("resource", "port", "int", &["80"], false)));
        assert!(!entry("resource_attrs_float").may_exist(&summary("resource", "port", "int", &["80"], false)));
        assert!(entry("resource_attrs_float").may_exist(&summary("resource", "port", "int", &["80"], true)), "truncated");
        assert!(entry("resource_attrs_other").may_exist(&summary("resource", "port", "int", &["80"], false)), "other: listed by name only");
        assert!(!entry("resource_attrs_other").may_exist(&summary("resource", "host", "int", &["80"], false)));
        assert!(!entry("span_attrs_int").may_exist(&summary("resource", "port", "int", &["80"], false)), "other scope");
    }

    #[test]
    fn a_block_is_ruled_out_only_when_its_summary_lists_every_value_and_not_this_one() {
        let equality = tag_equalities(&[get_field(column("span_attrs_str"), "db.operation").eq(lit("INSERT"))]).remove(0);
        assert!(equality.may_match(&summary("span", "db.operation", "string", &["SELECT", "INSERT"], false)));
        assert!(!equality.may_match(&summary("span", "db.operation", "string", &["SELECT"], false)));
        assert!(equality.may_match(&summary("span", "db.operation", "string", &["SELECT"], true)), "truncated: may hold it");
        assert!(!equality.may_match(&summary("span", "db.operation", "int", &["1"], false)), "only other types");
        assert!(!equality.may_match(&summary("span", "other.key", "string", &["INSERT"], false)), "no such attribute");
        assert!(!equality.may_match(&summary("resource", "db.operation", "string", &["INSERT"], false)), "other scope");
    }
}
