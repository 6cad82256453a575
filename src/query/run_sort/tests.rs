use super::*;
use arrow::array::{Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::pretty::pretty_format_batches;
use datafusion::datasource::MemTable;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// Rows (run, leaf, t, text) with the given keys, cut into batches of 32.
fn batches(keys: &[(&str, i64, i64)]) -> Vec<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("run", DataType::Utf8, true),
        Field::new("leaf", DataType::Int64, true),
        Field::new("t", DataType::Int64, false),
        Field::new("text", DataType::Utf8, false),
    ]));
    keys.chunks(32)
        .map(|c| {
            let run: StringArray = c.iter().map(|k| (!k.0.is_empty()).then_some(k.0)).collect();
            let leaf: Int64Array = c.iter().map(|k| (k.1 >= 0).then_some(k.1)).collect();
            let t = Int64Array::from_iter_values(c.iter().map(|k| k.2));
            let text = StringArray::from_iter_values(
                c.iter().map(|k| format!("{} leaf {} at {}", k.0, k.1, k.2)),
            );
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![Arc::new(run), Arc::new(leaf), Arc::new(t), Arc::new(text)],
            )
            .unwrap()
        })
        .collect()
}

/// Paths cut into segments of consecutive t, the segments shuffled: the
/// shape of a join that emits each leaf's path segment by segment.
fn segments(seed: u64) -> Vec<(&'static str, i64, i64)> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut segs = Vec::new();
    for run in ["a", "b", ""] {
        for leaf in (-1..40).filter(|l| *l != 0) {
            let mut t = 0;
            for _ in 0..rng.random_range(1..4) {
                let len = rng.random_range(3..16);
                segs.push((run, leaf, t, len));
                t += len;
            }
        }
    }
    segs.shuffle(&mut rng);
    segs.iter()
        .flat_map(|&(run, leaf, t, len)| (t..t + len).map(move |t| (run, leaf, t)))
        .collect()
}

fn ctx(rule: bool, memory: usize) -> SessionContext {
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(memory, 1.0)
        .build_arc()
        .unwrap();
    let mut config = SessionConfig::new()
        .with_target_partitions(2)
        .with_batch_size(16);
    config.options_mut().execution.sort_spill_reservation_bytes = memory / 32;
    let mut state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features();
    if rule {
        state = state.with_physical_optimizer_rule(Arc::new(RunSortRule));
    }
    SessionContext::new_with_state(state.build())
}

/// The query's rows with and without the rule, and the rule's plan.
async fn both(keys: &[(&str, i64, i64)], order: &str, memory: usize) -> (String, String, String) {
    let data = batches(keys);
    let half = data.len() / 2;
    let parts = vec![data[..half].to_vec(), data[half..].to_vec()];
    let sql = format!("SELECT * FROM t ORDER BY {order}");
    let mut out = Vec::new();
    for rule in [false, true] {
        let ctx = ctx(rule, memory);
        let table = MemTable::try_new(data[0].schema(), parts.clone()).unwrap();
        ctx.register_table("t", Arc::new(table)).unwrap();
        let rows = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        out.push(pretty_format_batches(&rows).unwrap().to_string());
    }
    let ctx = ctx(true, memory);
    let table = MemTable::try_new(data[0].schema(), parts).unwrap();
    ctx.register_table("t", Arc::new(table)).unwrap();
    let plan = ctx
        .sql(&format!("EXPLAIN {sql}"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let plan = pretty_format_batches(&plan).unwrap().to_string();
    (out.remove(0), out.remove(0), plan)
}

/// Which path `sort_runs` takes over these rows, and its output.
async fn path(keys: &[(&str, i64, i64)], memory: usize) -> (Option<Fallback>, Vec<RecordBatch>) {
    let data = batches(keys);
    let schema = data[0].schema();
    let ctx = ctx(true, memory);
    let task = ctx.task_ctx();
    let order = LexOrdering::new(["run", "leaf", "t"].map(|c| {
        datafusion::physical_expr::PhysicalSortExpr::new_default(
            datafusion::physical_expr::expressions::col(c, &schema).unwrap(),
        )
    }))
    .unwrap();
    // Two partitions, as the joins give them.
    let half = data.len() / 2;
    let parts = [data[..half].to_vec(), data[half..].to_vec()];
    let input: Arc<dyn ExecutionPlan> =
        MemorySourceConfig::try_new_exec(&parts, Arc::clone(&schema), None).unwrap();
    let reservation = MemoryConsumer::new("test").register(task.memory_pool());
    let (stream, why) = sort_runs(order, input, reservation, task).await.unwrap();
    (why, stream.try_collect().await.unwrap())
}

#[tokio::test]
async fn rows_in_runs_are_ordered_as_runs_and_give_the_sorts_rows() {
    for seed in 0..4 {
        let keys = segments(seed);
        let (plain, ours, plan) = both(&keys, "run, leaf, t", 64 << 20).await;
        assert_eq!(plain, ours, "seed {seed}");
        assert!(plan.contains("RunSortExec"), "{plan}");
        assert!(!plan.contains("SortPreservingMergeExec"), "{plan}");
        let (why, rows) = path(&keys, 64 << 20).await;
        assert_eq!(why, None);
        assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), keys.len());
    }
    // Descending keys and nulls first or last: the row format's order.
    let keys = segments(9);
    for order in [
        "run DESC NULLS LAST, leaf, t",
        "run NULLS FIRST, leaf DESC, t",
        "leaf, run, t",
    ] {
        let (plain, ours, _) = both(&keys, order, 64 << 20).await;
        assert_eq!(plain, ours, "{order}");
    }
}

#[tokio::test]
async fn other_inputs_go_to_datafusions_sort_with_the_same_rows() {
    // Equal keys: a sort may order them either way; DataFusion decides.
    let mut ties = segments(1);
    ties.extend(segments(1));
    assert_eq!(path(&ties, 64 << 20).await.0, Some(Fallback::Ties));
    // Overlapping runs are merged: leaf 1's even steps, then its odd ones.
    let overlap: Vec<_> = (0..20)
        .map(|t| 2 * t)
        .chain((0..20).map(|t| 2 * t + 1))
        .chain(40..400)
        .map(|t| ("a", 1, t))
        .collect();
    let (why, rows) = path(&overlap, 64 << 20).await;
    assert_eq!(why, None);
    let t: Vec<i64> = rows
        .iter()
        .flat_map(|b| {
            b.column(2)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .values()
                .to_vec()
        })
        .collect();
    let mut want: Vec<i64> = overlap.iter().map(|k| k.2).collect();
    want.sort();
    assert_eq!(t, want);
    // Shuffled rows: runs of one or two rows.
    let mut shuffled = segments(2);
    shuffled.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(3));
    assert_eq!(path(&shuffled, 64 << 20).await.0, Some(Fallback::ShortRuns));
    // More than its share of the memory limit: sorted runs on disk,
    // merged.
    let big: Vec<_> = (0..5)
        .flat_map(|c| {
            segments(4)
                .into_iter()
                .map(move |k| (k.0, k.1 + 1000 * c, k.2))
        })
        .collect();
    let (why, rows) = path(&big, 256 << 10).await;
    assert_eq!(why, None);
    assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), big.len());
    for (keys, memory) in [
        (ties, 64 << 20),
        (overlap, 64 << 20),
        (shuffled, 64 << 20),
        (big, 256 << 10),
    ] {
        let (plain, ours, _) = both(&keys, "run, leaf, t", memory).await;
        assert_eq!(plain, ours);
    }
}
