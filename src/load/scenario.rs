//! Scenarios: which customer each purchase is for.
//!
//! - uniform: every customer equally likely;
//! - hot partner: only the customers charged to one partner (the one charged for the most
//!   customers), so every purchase charges it;
//! - skewed: Zipf with exponent `s` over the customers (rank 1 the first customer of the
//!   world, or of the hot partner), drawn from a precomputed cumulative table by binary search.
//!
//! Invariant: a pick is a function of the task's seeded generator only, so the same seed
//! gives the same sequence of customers; picking does not allocate.

use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::Rng;

/// Picks customer indices (into [`super::model::Book`]'s customers).
#[derive(Clone, Debug)]
pub struct Picker {
    /// The customers to pick from, as indices into the book; every customer when `None`.
    candidates: Option<Arc<[u32]>>,
    count: usize,
    /// Cumulative Zipf weights, normalized to end at 1; uniform when `None`.
    zipf_cumulative: Option<Arc<[f64]>>,
}

impl Picker {
    /// `candidates` narrows the customers (the hot partner's); `zipf` is the exponent.
    pub fn new(customers: usize, candidates: Option<Vec<u32>>, zipf: Option<f64>) -> anyhow::Result<Picker> {
        let count = candidates.as_ref().map_or(customers, Vec::len);
        anyhow::ensure!(count > 0, "no customers to pick from");
        let zipf_cumulative = match zipf {
            None => None,
            Some(exponent) => {
                anyhow::ensure!(
                    exponent.is_finite() && exponent > 0.0 && exponent <= 10.0,
                    "--zipf must be greater than 0 and at most 10"
                );
                let mut cumulative = Vec::with_capacity(count);
                let mut sum = 0.0;
                for rank in 1..=count {
                    sum += 1.0 / (rank as f64).powf(exponent);
                    cumulative.push(sum);
                }
                for value in &mut cumulative {
                    *value /= sum;
                }
                Some(cumulative.into())
            }
        };
        Ok(Picker { candidates: candidates.map(Into::into), count, zipf_cumulative })
    }

    /// How many customers this picks from.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn pick(&self, rng: &mut SmallRng) -> usize {
        let rank = match &self.zipf_cumulative {
            None => rng.gen_range(0..self.count),
            Some(cumulative) => {
                let draw: f64 = rng.gen();
                cumulative.partition_point(|&value| value < draw).min(self.count - 1)
            }
        };
        match &self.candidates {
            None => rank,
            Some(candidates) => candidates[rank] as usize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn zipf_prefers_the_first_ranks() {
        let picker = Picker::new(1_000, None, Some(1.2)).unwrap();
        let mut rng = SmallRng::seed_from_u64(7);
        let mut counts = vec![0u32; 1_000];
        for _ in 0..100_000 {
            counts[picker.pick(&mut rng)] += 1;
        }
        assert!(counts[0] > counts[1] && counts[1] > counts[10] && counts[10] > counts[900]);
        // With s = 1.2 over 1,000 ranks the first holds about 23% of the draws.
        assert!((18_000..28_000).contains(&counts[0]), "{}", counts[0]);
    }

    #[test]
    fn candidates_narrow_the_picks_and_seeds_repeat() {
        let picker = Picker::new(100, Some(vec![5, 7, 9]), None).unwrap();
        let draws = |seed| {
            let mut rng = SmallRng::seed_from_u64(seed);
            (0..50).map(|_| picker.pick(&mut rng)).collect::<Vec<_>>()
        };
        assert!(draws(1).iter().all(|index| [5, 7, 9].contains(index)));
        assert_eq!(draws(1), draws(1));
        assert_ne!(draws(1), draws(2));
        let refused = |picker: anyhow::Result<Picker>| picker.err().map(|error| error.to_string());
        assert_eq!(
            refused(Picker::new(10, None, Some(0.0))).as_deref(),
            Some("--zipf must be greater than 0 and at most 10")
        );
        assert_eq!(
            refused(Picker::new(10, Some(vec![]), None)).as_deref(),
            Some("no customers to pick from")
        );
    }
}
