//! The random distributions the generator draws from: lognormal durations
//! with a heavy (Pareto) tail, skewed picks for popular keys, exponential
//! inter-arrival times, and collision-free id sequences.
//!
//! Everything draws from [`ChaCha8Rng`] streams, whose output is the same on
//! every platform; the float maths is `ln`, `exp`, `cos`, `powf` and `sqrt`.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The generator's random number generator.
pub type GenRng = ChaCha8Rng;

/// Probability that a self-time is multiplied by a Pareto factor: the rare
/// GC pause, lock convoy or cold cache that makes p99.9 latencies.
const TAIL_PROBABILITY: f64 = 0.004;
/// Shape of the tail factor (smaller is heavier).
const TAIL_ALPHA: f64 = 1.3;
/// Smallest tail factor.
const TAIL_MIN: f64 = 4.0;
/// Largest tail factor, so one unlucky draw cannot make an hour-long span.
const TAIL_MAX: f64 = 400.0;

/// A lognormal distribution of nanoseconds, given by its median and the
/// standard deviation of its logarithm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogNormal {
    mu: f64,
    sigma: f64,
}

impl LogNormal {
    /// A lognormal with median `median_ns` and log-space spread `sigma`.
    pub fn new(median_ns: f64, sigma: f64) -> Self {
        Self { mu: median_ns.max(1.0).ln(), sigma }
    }

    /// The mean, `exp(mu + sigma^2 / 2)`.
    pub fn mean(&self) -> f64 {
        (self.mu + self.sigma * self.sigma / 2.0).exp()
    }

    /// One draw, in nanoseconds (not rounded).
    pub fn sample(&self, rng: &mut GenRng) -> f64 {
        (self.mu + self.sigma * standard_normal(rng)).exp()
    }

    /// One draw with the heavy tail applied, as whole nanoseconds (at least 1).
    pub fn sample_ns(&self, rng: &mut GenRng) -> u64 {
        let mut ns = self.sample(rng);
        if rng.random_bool(TAIL_PROBABILITY) {
            // Pareto(alpha) by inversion: TAIL_MIN * u^(-1/alpha).
            let u: f64 = 1.0 - rng.random::<f64>();
            ns *= (TAIL_MIN * u.powf(-1.0 / TAIL_ALPHA)).min(TAIL_MAX);
        }
        (ns as u64).max(1)
    }
}

/// A standard normal draw (Box–Muller; one of the pair is discarded to keep
/// the generator stateless).
pub fn standard_normal(rng: &mut GenRng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]: ln is finite
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// An exponential draw with mean `mean` (Poisson inter-arrival times).
pub fn exponential(rng: &mut GenRng, mean: f64) -> f64 {
    let u: f64 = 1.0 - rng.random::<f64>();
    -mean * u.ln()
}

/// An index in `0..n` where low indexes are far more likely: `n * u^skew`.
/// `skew = 1` is uniform; popular users, products and keys use 2–4.
pub fn skewed_index(rng: &mut GenRng, n: usize, skew: f64) -> usize {
    let u: f64 = rng.random::<f64>();
    ((n as f64 * u.powf(skew)) as usize).min(n.saturating_sub(1))
}

/// An index into `weights` drawn in proportion to them, given their
/// running totals (`cumulative[i] = weights[0] + ... + weights[i]`).
pub fn weighted_index(rng: &mut GenRng, cumulative: &[f64]) -> usize {
    let total = cumulative.last().copied().unwrap_or(0.0);
    let x = rng.random::<f64>() * total;
    cumulative.partition_point(|&c| c <= x).min(cumulative.len().saturating_sub(1))
}

/// Running totals of `weights`, for [`weighted_index`].
pub fn cumulative(weights: impl IntoIterator<Item = f64>) -> Vec<f64> {
    let mut total = 0.0;
    weights
        .into_iter()
        .map(|w| {
            total += w;
            total
        })
        .collect()
}

/// A sequence of distinct, non-zero, random-looking 64-bit ids: a bijective
/// mix of a counter, so ids never repeat however many are drawn.
#[derive(Debug, Clone)]
pub struct IdSequence {
    key: u64,
    counter: u64,
}

impl IdSequence {
    /// A sequence keyed by `key` (different keys give different sequences).
    pub fn new(key: u64) -> Self {
        Self { key, counter: 0 }
    }

    /// The next id.
    pub fn next_id(&mut self) -> u64 {
        loop {
            let id = mix64(self.counter.wrapping_add(self.key));
            self.counter += 1;
            // The mix is a bijection: exactly one counter value maps to zero.
            if id != 0 {
                return id;
            }
        }
    }
}

/// SplitMix64's finaliser: a bijection on `u64` with good avalanche.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn lognormal_median_and_tail() {
        let mut rng = GenRng::seed_from_u64(7);
        let d = LogNormal::new(1_000_000.0, 0.8);
        let mut draws: Vec<u64> = (0..20_000).map(|_| d.sample_ns(&mut rng)).collect();
        draws.sort_unstable();
        let median = draws[draws.len() / 2] as f64;
        assert!((900_000.0..1_100_000.0).contains(&median), "median {median}");
        // Heavy tail: p99.9 is far above what sigma alone gives (~12x median).
        let p999 = draws[draws.len() * 999 / 1000] as f64;
        assert!(p999 > 15.0 * median, "p99.9 {p999} vs median {median}");
        assert!(draws[0] >= 1);
    }

    #[test]
    fn id_sequences_are_distinct_and_non_zero() {
        let mut ids = IdSequence::new(u64::MAX - 5); // crosses the counter value that mixes to 0
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let id = ids.next_id();
            assert_ne!(id, 0);
            assert!(seen.insert(id));
        }
        assert_eq!(mix64(0), 0, "the one counter value skipped");
    }

    #[test]
    fn weighted_and_skewed_picks_stay_in_range() {
        let mut rng = GenRng::seed_from_u64(1);
        let cum = cumulative([1.0, 0.0, 3.0]);
        let mut counts = [0; 3];
        for _ in 0..4000 {
            counts[weighted_index(&mut rng, &cum)] += 1;
        }
        assert_eq!(counts[1], 0);
        assert!(counts[2] > 2 * counts[0], "{counts:?}");
        let mut low = 0;
        for _ in 0..1000 {
            let i = skewed_index(&mut rng, 100, 3.0);
            assert!(i < 100);
            low += (i < 10) as usize;
        }
        assert!(low > 300, "skew favours low indexes: {low}");
    }
}
