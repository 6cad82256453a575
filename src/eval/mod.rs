//! Evaluation: Pass@k with the unbiased estimator.
//!
//! For a task with n samples of which c succeeded, Pass@k = 1 − C(n−c, k) / C(n, k)
//! (Chen et al. 2021): the probability that at least one of k samples drawn
//! without replacement from the n succeeds. Computed as a running product so
//! large n does not overflow.

/// Unbiased Pass@k for one task; `k` must be ≤ `n`.
pub fn pass_at_k(n: u64, c: u64, k: u64) -> f64 {
    assert!(
        k >= 1 && k <= n && c <= n,
        "pass_at_k needs 1 <= k <= n and c <= n (n={n}, c={c}, k={k})"
    );
    if n - c < k {
        return 1.0;
    }
    // C(n−c, k) / C(n, k) = Π_{i=0}^{k−1} (n−c−i) / (n−i)
    let mut fail = 1.0f64;
    for i in 0..k {
        fail *= (n - c - i) as f64 / (n - i) as f64;
    }
    1.0 - fail
}

/// Mean Pass@k over tasks given (n, c) per task.
pub fn mean_pass_at_k(counts: &[(u64, u64)], k: u64) -> f64 {
    if counts.is_empty() {
        return 0.0;
    }
    counts.iter().map(|&(n, c)| pass_at_k(n, c, k)).sum::<f64>() / counts.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute_force(n: u64, c: u64, k: u64) -> f64 {
        // Enumerate all k-subsets of n items where the first c succeed.
        let (n, c, k) = (n as usize, c as usize, k as usize);
        let (mut hit, mut total) = (0u64, 0u64);
        for mask in 0u32..(1 << n) {
            if mask.count_ones() as usize != k {
                continue;
            }
            total += 1;
            if (0..c).any(|i| mask & (1 << i) != 0) {
                hit += 1;
            }
        }
        hit as f64 / total as f64
    }

    #[test]
    fn equals_brute_force_and_is_monotone_in_k() {
        for n in 1..=10u64 {
            for c in 0..=n {
                let mut prev = 0.0;
                for k in 1..=n {
                    let p = pass_at_k(n, c, k);
                    assert!(
                        (p - brute_force(n, c, k)).abs() < 1e-12,
                        "n={n} c={c} k={k}"
                    );
                    assert!((0.0..=1.0).contains(&p));
                    assert!(p >= prev - 1e-15);
                    prev = p;
                }
            }
        }
        assert_eq!(pass_at_k(128, 0, 128), 0.0);
        assert!((pass_at_k(128, 1, 1) - 1.0 / 128.0).abs() < 1e-12);
    }
}
