//! Statistics of the report: confidence intervals over seeds and a paired
//! bootstrap over tasks.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Two-sided 97.5 % quantiles of Student's t for 1..=30 degrees of freedom.
const T975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// Mean and the half-width of its 95 % confidence interval (Student's t
/// with n − 1 degrees of freedom; 0 for one value, NaN for none).
pub fn mean_ci95(values: &[f64]) -> (f64, f64) {
    let n = values.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let t = T975.get(n - 2).copied().unwrap_or(1.96);
    (mean, t * (var / n as f64).sqrt())
}

/// The mean of `diffs` (one paired difference per task) and its 95 %
/// percentile-bootstrap interval: `resamples` resamplings of the tasks with
/// replacement, seeded by `seed`.
pub fn paired_bootstrap(diffs: &[f64], resamples: usize, seed: u64) -> (f64, f64, f64) {
    let n = diffs.len();
    if n == 0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mean = diffs.iter().sum::<f64>() / n as f64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..resamples.max(1))
        .map(|_| (0..n).map(|_| diffs[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| means[((q * (means.len() - 1) as f64).round() as usize).min(means.len() - 1)];
    (mean, at(0.025), at(0.975))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_t_interval_matches_a_hand_computation() {
        // mean 2, sd 1, n 3: half-width 4.303 / sqrt(3).
        let (m, h) = mean_ci95(&[1.0, 2.0, 3.0]);
        assert!((m - 2.0).abs() < 1e-12 && (h - 4.303 / 3f64.sqrt()).abs() < 1e-9);
        assert_eq!(mean_ci95(&[5.0]), (5.0, 0.0));
    }

    #[test]
    fn the_bootstrap_covers_the_mean_and_shrinks_with_more_tasks() {
        let few: Vec<f64> = (0..20)
            .map(|i| if i % 4 == 0 { 0.5 } else { 0.0 })
            .collect();
        let many: Vec<f64> = (0..2000)
            .map(|i| if i % 4 == 0 { 0.5 } else { 0.0 })
            .collect();
        let (m, lo, hi) = paired_bootstrap(&few, 2000, 1);
        assert!(lo <= m && m <= hi && (m - 0.125).abs() < 1e-12);
        let (_, lo2, hi2) = paired_bootstrap(&many, 2000, 1);
        assert!(hi2 - lo2 < (hi - lo) / 3.0);
        // Identical methods: a zero-width interval at 0.
        assert_eq!(paired_bootstrap(&[0.0; 10], 100, 1), (0.0, 0.0, 0.0));
        // Seeded: the same interval twice.
        assert_eq!(
            paired_bootstrap(&few, 500, 7),
            paired_bootstrap(&few, 500, 7)
        );
    }
}
