//! An optimizer rule of every query session: an attribute-map entry that no
//! span the session reads can have (by the tag summaries of its blocks and
//! of its unflushed spans) reads as NULL, so its map column is not decoded.
//!
//! TraceQL reads an attribute of unknown type (`by()`, `select()`, metrics
//! `by`) from its string, int, float and bool maps together: a dedicated
//! string like `resource.service.name` also reads three whole maps that
//! almost never hold it. On `small` those maps were most of the CPU of
//! `avg() by (resource.service.name)` and of the metrics query.

use std::sync::{Arc, OnceLock};

use arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use arrow::datatypes::DataType;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use super::table::SpansTable;
use super::tag_pruning::MapEntry;
use crate::block::{LiveBlock, TagSummary};
use crate::schema::span_schema;

/// The value type of the attribute map column `column`.
fn map_value_type(column: &str) -> Option<DataType> {
    match span_schema().field_with_name(column).ok()?.data_type() {
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(fields) => fields.get(1).map(|value| value.data_type().clone()),
            _ => None,
        },
        _ => None,
    }
}

/// Replaces map entries absent from the session's data by typed NULLs.
#[derive(Debug)]
pub(crate) struct AbsentAttributes {
    unflushed: Vec<RecordBatch>,
    blocks: Vec<Arc<LiveBlock>>,
    /// The tags of each of `blocks` and of `unflushed`, gathered on first
    /// need; `None` when some block has no summary (then nothing is known
    /// absent). Kept apart, not merged: an entry may exist if it may exist
    /// in any of them, and merging costs more than looking (a tenth of a
    /// metrics query's CPU on one block).
    summaries: OnceLock<Option<Vec<Arc<TagSummary>>>>,
}

impl AbsentAttributes {
    /// The rule for the data `table` reads (it must be pinned, so that its
    /// scans read exactly the data summarised here).
    pub(crate) fn new(table: &SpansTable) -> Self {
        let (unflushed, blocks) = table.snapshot();
        let blocks = blocks.iter().filter(|b| table.reads_block(b)).cloned().collect();
        Self { unflushed, blocks, summaries: OnceLock::new() }
    }

    fn summaries(&self) -> Option<&[Arc<TagSummary>]> {
        self.summaries
            .get_or_init(|| {
                let blocks = self.blocks.iter().map(|block| block.tags.clone());
                let unflushed = self.unflushed.iter().map(|batch| TagSummary::from_batch(batch).ok().map(Arc::new));
                blocks.chain(unflushed).collect()
            })
            .as_deref()
    }

    fn rewrite_expr(&self, expr: Expr) -> Result<Transformed<Expr>> {
        let Some(entry) = MapEntry::of(&expr) else { return Ok(Transformed::no(expr)) };
        let Some(summaries) = self.summaries() else { return Ok(Transformed::no(expr)) };
        if summaries.iter().any(|summary| entry.may_exist(summary)) {
            return Ok(Transformed::no(expr));
        }
        // A NULL of the entry's own type, so that every expression above keeps its type.
        let Some(value_type) = map_value_type(&entry.column) else { return Ok(Transformed::no(expr)) };
        Ok(Transformed::yes(Expr::Literal(ScalarValue::try_from(&value_type)?, None)))
    }
}

impl OptimizerRule for AbsentAttributes {
    fn name(&self) -> &str {
        "spanlake_absent_attributes"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        // Table scans hold pushed-down copies of filters; their columns are
        // the table's, and rewriting them is not needed for correctness.
        if matches!(plan, LogicalPlan::TableScan(_)) {
            return Ok(Transformed::no(plan));
        }
        let names = NamePreserver::new(&plan);
        plan.map_expressions(|expr| {
            let name = names.save(&expr);
            let rewritten = expr.transform_up(|e| self.rewrite_expr(e))?;
            Ok(rewritten.update_data(|e| name.restore(e)))
        })
    }
}
