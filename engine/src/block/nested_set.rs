//! Per-trace derived columns, computed when a block is cut: nested-set
//! numbering (for structural operators) and trace-level summaries.
//!
//! Numbering follows Tempo: a depth-first walk from each root gives every
//! reachable span `left` on entry and `right` on exit from one counter
//! starting at 1; `parent` is the parent's `left` (-1 for roots). Spans not
//! reachable from a root (orphans, cycles) get 0 everywhere, so structural
//! operators never match them.

use std::collections::HashMap;

/// Inputs for one trace: rows `range` of the sorted block.
pub(crate) struct TraceSpans<'a> {
    pub span_ids: &'a [[u8; 8]],
    /// `None` for root spans.
    pub parent_ids: &'a [Option<[u8; 8]>],
}

/// Nested-set numbers for the spans of one trace, parallel to the input.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct NestedSet {
    pub left: Vec<i32>,
    pub right: Vec<i32>,
    pub parent: Vec<i32>,
    /// Direct children present in the trace (`span:childCount`).
    pub child_count: Vec<i32>,
}

/// Computes the nested set of one trace. Roots are visited in input order
/// (the block is sorted by start time within a trace).
pub(crate) fn nested_set(trace: &TraceSpans<'_>) -> NestedSet {
    let n = trace.span_ids.len();
    let mut out = NestedSet { left: vec![0; n], right: vec![0; n], parent: vec![0; n], child_count: vec![0; n] };
    let by_id: HashMap<[u8; 8], usize> = trace.span_ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut roots = Vec::new();
    for (i, parent) in trace.parent_ids.iter().enumerate() {
        match parent {
            None => roots.push(i),
            Some(p) => {
                if let Some(&pi) = by_id.get(p)
                    && pi != i
                {
                    children[pi].push(i);
                }
            }
        }
    }
    for (i, c) in children.iter().enumerate() {
        out.child_count[i] = c.len() as i32;
    }
    let mut counter = 0i32;
    let mut visited = vec![false; n];
    // Iterative DFS: (span, next child position).
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for root in roots {
        if visited[root] {
            continue;
        }
        visited[root] = true;
        counter += 1;
        out.left[root] = counter;
        out.parent[root] = -1;
        stack.push((root, 0));
        while let Some((node, next)) = stack.last_mut() {
            let node = *node;
            if let Some(&child) = children[node].get(*next) {
                *next += 1;
                if visited[child] {
                    continue;
                }
                visited[child] = true;
                counter += 1;
                out.left[child] = counter;
                out.parent[child] = out.left[node];
                stack.push((child, 0));
            } else {
                counter += 1;
                out.right[node] = counter;
                stack.pop();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> [u8; 8] {
        [n; 8]
    }

    #[test]
    fn numbers_a_tree_and_leaves_orphans_at_zero() {
        // 1 is root; 2, 3 children of 1; 4 child of 2; 5 orphan (parent 9 missing).
        let span_ids = [id(1), id(2), id(3), id(4), id(5)];
        let parent_ids = [None, Some(id(1)), Some(id(1)), Some(id(2)), Some(id(9))];
        let set = nested_set(&TraceSpans { span_ids: &span_ids, parent_ids: &parent_ids });
        assert_eq!(set.left, vec![1, 2, 6, 3, 0]);
        assert_eq!(set.right, vec![8, 5, 7, 4, 0]);
        assert_eq!(set.parent, vec![-1, 1, 1, 2, 0]);
        assert_eq!(set.child_count, vec![2, 1, 0, 0, 0]);
    }

    #[test]
    fn cycles_without_root_are_unreachable() {
        let span_ids = [id(1), id(2)];
        let parent_ids = [Some(id(2)), Some(id(1))];
        let set = nested_set(&TraceSpans { span_ids: &span_ids, parent_ids: &parent_ids });
        assert_eq!(set, NestedSet { left: vec![0, 0], right: vec![0, 0], parent: vec![0, 0], child_count: vec![1, 1] });
    }
}
