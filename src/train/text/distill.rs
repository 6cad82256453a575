//! Stage 2 for the text policy from SQL: LEAFE and RFT distillation of a
//! text model from the store's trees. The decisions are what
//! `queries/text_counterfactual_pairs.sql` and `queries/text_rehearsal.sql`
//! return: every successful path from its root, step by step, with each
//! step's feedback and legal actions, `target` marking the steps trained on.
//! From the rows before a target the policy's context is rebuilt exactly as
//! it was read when the step was taken ([`TextPolicy::input`]): the path's
//! first observation and the recent actions with their feedback. The
//! experience summary is never selected, so the network learns the corrected
//! behaviour without it (counterfactual distillation), as for the MLP
//! ([`crate::train::distill`]).

use std::collections::BTreeMap;
use std::path::Path;

use arrow::array::{Array, AsArray, BooleanArray, StringArray};
use arrow::datatypes::{DataType, Int64Type};
use arrow::record_batch::RecordBatch;
use futures::StreamExt;

use super::{TextDecision, fit_text, load_text_policy};
use crate::policy::text::{TextPolicy, recent_text_of};
use crate::query::{QuerySession, load_query};
use crate::store::Store;
use crate::train::distill::{DistillConfig, DistillReport, Method};
use crate::train::{Result, TrainError};

/// Rebuilds the decisions of a path query's rows, in their order (run,
/// leaf, t): the context of each target row is the rows of its leaf before
/// it.
#[derive(Debug, Default)]
pub struct PathDecisions {
    history: usize,
    weight: f32,
    leaf: Option<(String, i64)>,
    first: String,
    path: Vec<(String, String)>,
    /// The decisions so far.
    pub decisions: Vec<TextDecision>,
    /// Target rows whose action was not among their legal actions (taken,
    /// not learned from).
    pub not_legal: usize,
}

/// One row of a text path query.
#[derive(Debug, Clone, Copy)]
pub struct PathRow<'a> {
    /// The run.
    pub run_id: &'a str,
    /// The successful episode whose path this row is on.
    pub leaf: i64,
    /// Step index on the path.
    pub t: i64,
    /// The observation before the action.
    pub observation: &'a str,
    /// The action taken.
    pub action: &'a str,
    /// The environment's feedback on it.
    pub feedback: &'a str,
    /// The legal actions (`steps.legal_actions`, a JSON array), if stored.
    pub legal: Option<&'a str>,
    /// Whether this step is trained on.
    pub target: bool,
}

impl PathDecisions {
    /// Decisions with `history` recent steps of context and loss `weight`.
    pub fn new(history: usize, weight: f32) -> PathDecisions {
        PathDecisions {
            history,
            weight,
            ..PathDecisions::default()
        }
    }

    /// Takes the next row.
    ///
    /// # Errors
    /// [`TrainError::Invalid`] for a target row without legal actions (a
    /// step stored before `steps.legal_actions` existed, or by an
    /// environment that lists none) or with a list that is not JSON.
    pub fn push(&mut self, row: PathRow<'_>) -> Result<()> {
        let same = self
            .leaf
            .as_ref()
            .is_some_and(|(r, l)| r == row.run_id && *l == row.leaf);
        if !same {
            self.leaf = Some((row.run_id.to_string(), row.leaf));
            self.first = row.observation.to_string();
            self.path.clear();
        }
        if row.target {
            let Some(text) = row.legal else {
                return Err(TrainError::Invalid(format!(
                    "run {}, step {} of the path to episode {}: no legal actions stored. The text policy learns to choose among them; steps explored before leafe stored them (steps version < 4), or in an environment that lists none, cannot train it: explore again",
                    row.run_id, row.t, row.leaf
                )));
            };
            let legal: Vec<String> = serde_json::from_str(text).map_err(|e| {
                TrainError::Invalid(format!(
                    "run {}, step {} of the path to episode {}: legal_actions is not a JSON array of strings: {e}",
                    row.run_id, row.t, row.leaf
                ))
            })?;
            match legal.iter().position(|a| a == row.action) {
                Some(target) => self.decisions.push(TextDecision {
                    first: self.first.clone(),
                    recent: recent_text_of(&self.path, self.history),
                    observation: row.observation.to_string(),
                    legal,
                    target,
                    weight: self.weight,
                }),
                None => self.not_legal += 1,
            }
        }
        self.path
            .push((row.action.to_string(), row.feedback.to_string()));
        Ok(())
    }

    /// Takes every row of a batch with the path queries' columns.
    ///
    /// # Errors
    /// [`TrainError::Invalid`] for a missing or mistyped column, and as
    /// [`PathDecisions::push`].
    pub fn push_batch(&mut self, b: &RecordBatch, source: &str) -> Result<()> {
        let (run, leaf, t) = (
            text_column(b, "run_id", source)?,
            int_column(b, "leaf_episode_id", source)?,
            int_column(b, "t", source)?,
        );
        let (obs, action, feedback, legal) = (
            text_column(b, "observation", source)?,
            text_column(b, "action_text", source)?,
            text_column(b, "feedback", source)?,
            text_column(b, "legal_actions", source)?,
        );
        let target: BooleanArray = column(b, "target", source)?
            .as_boolean_opt()
            .ok_or_else(|| TrainError::Invalid(format!("{source}: `target` is not Boolean")))?
            .clone();
        for i in 0..b.num_rows() {
            self.push(PathRow {
                run_id: run.value(i),
                leaf: leaf.value(i),
                t: t.value(i),
                observation: obs.value(i),
                action: action.value(i),
                feedback: feedback.value(i),
                legal: (!legal.is_null(i)).then(|| legal.value(i)),
                target: target.is_valid(i) && target.value(i),
            })?;
        }
        Ok(())
    }
}

fn column<'a>(b: &'a RecordBatch, name: &str, source: &str) -> Result<&'a arrow::array::ArrayRef> {
    b.column_by_name(name).ok_or_else(|| {
        TrainError::Invalid(format!("{source}: the query returns no `{name}` column"))
    })
}

/// Column `name` of a query's batch as strings.
pub(crate) fn text_column(b: &RecordBatch, name: &str, source: &str) -> Result<StringArray> {
    let c = arrow::compute::cast(column(b, name, source)?, &DataType::Utf8)
        .map_err(|e| TrainError::Invalid(format!("{source}: `{name}`: {e}")))?;
    Ok(c.as_string::<i32>().clone())
}

/// Column `name` of a query's batch as 64-bit integers.
pub(crate) fn int_column(
    b: &RecordBatch,
    name: &str,
    source: &str,
) -> Result<arrow::array::Int64Array> {
    let c = arrow::compute::cast(column(b, name, source)?, &DataType::Int64)
        .map_err(|e| TrainError::Invalid(format!("{source}: `{name}`: {e}")))?;
    Ok(c.as_primitive::<Int64Type>().clone())
}

/// Trains the text model `init` with `method` (LEAFE or RFT) on the runs
/// matching the LIKE patterns `patterns`: LEAFE's loss is cross-entropy on
/// the counterfactual pairs plus `beta` × cross-entropy on rehearsal rows,
/// RFT's the rehearsal rows alone, as for the MLP. The decisions are held
/// in memory, at most `config.shuffle_buffer` of them.
///
/// # Errors
/// [`TrainError::Invalid`] for GRPO (it samples its own data), for no
/// decisions, for more than the buffer holds, and as
/// [`PathDecisions::push`]; the store's and the queries'.
pub async fn distill_text(
    store: &Store,
    init: &str,
    method: Method,
    patterns: &[String],
    queries: Option<&Path>,
    config: &DistillConfig,
    progress: impl FnMut(usize, usize, f32),
) -> Result<(TextPolicy, DistillReport)> {
    if method == Method::Grpo {
        return Err(TrainError::Invalid(
            "GRPO samples its own data: it is not a distillation".into(),
        ));
    }
    let base = load_text_policy(store, init).await?;
    let history = base.config().history;
    let session = QuerySession::open(store).await?;
    let mut sources: Vec<(&str, f32)> = Vec::new();
    if method == Method::Leafe {
        sources.push(("text_counterfactual_pairs", 1.0));
    }
    sources.push((
        "text_rehearsal",
        if method == Method::Leafe {
            config.beta
        } else {
            1.0
        },
    ));
    let cap = config.shuffle_buffer.max(1);
    let mut all = Vec::new();
    let mut counts = Vec::new();
    let mut not_legal = 0;
    for (name, weight) in sources {
        let query = load_query(queries, name)?;
        let mut rows = PathDecisions::new(history, weight);
        for p in patterns {
            let bound = query.bind(&BTreeMap::from([("run".to_string(), p.clone())]))?;
            let mut stream = session.stream(&bound).await?;
            while let Some(b) = stream.next().await {
                let b = b.map_err(|e| session.error(&bound.source_name, &e))?;
                rows.push_batch(&b, &bound.source_name)?;
                if all.len() + rows.decisions.len() > cap {
                    return Err(TrainError::Invalid(format!(
                        "more than {cap} text decisions in the runs matching {}: the text policy trains on what fits in memory; raise `shuffle_buffer` in the distill config, or train on fewer runs",
                        patterns.join(", ")
                    )));
                }
            }
        }
        counts.push(rows.decisions.len());
        not_legal += rows.not_legal;
        all.extend(rows.decisions);
    }
    let (pairs, rehearsal) = match counts.as_slice() {
        [p, r] => (*p, *r),
        [r] => (0, *r),
        _ => (0, 0),
    };
    if all.is_empty() {
        return Err(TrainError::NoData(format!(
            "nothing to train on: the runs matching {} hold no successful {} (with legal actions{})",
            patterns.join(", "),
            if method == Method::Leafe {
                "trajectory or branch"
            } else {
                "trajectory"
            },
            if not_legal > 0 {
                format!("; {not_legal} actions were not among them")
            } else {
                String::new()
            }
        )));
    }
    let (policy, epoch_losses) =
        tokio::task::block_in_place(|| fit_text(&base, &all, &config.fit, progress))?;
    Ok((
        policy,
        DistillReport {
            pairs,
            rehearsal,
            epoch_losses,
        },
    ))
}
