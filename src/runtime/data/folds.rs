//! K-fold cross-validation: which fold each row is held out in.
//!
//! Classification folds are stratified (scikit-learn's `StratifiedKFold`
//! with `shuffle=True`): each class's rows are shuffled with the seed and
//! dealt to the folds in turn, continuing from one class to the next, so
//! every fold holds each class's rows to within one and the folds' sizes
//! differ by at most one. Regression folds deal the shuffled rows the same
//! way (`KFold(shuffle=True)`). Each fold's preprocessing is fitted on its
//! own training rows by [`Resolved::bind`], as a split's is.

use super::prepare::{Bound, Resolved};
use super::{BindError, DataError};
use crate::ir::program::Program;

/// The rows of a resolved table dealt to `k` folds.
pub struct Folds {
    pub k: usize,
    /// The fold of each kept row (by position in `Resolved::kept`).
    pub fold: Vec<usize>,
    resolved: Resolved,
}

/// Deal `classes.len()` rows (or `n` rows without classes) to `k` folds.
/// Returns each row's fold.
pub fn assign(n: usize, classes: Option<&[u32]>, k: usize, seed: u64) -> Vec<usize> {
    let mut rng = super::prepare::SplitRng::new(seed ^ 0x0046_4f4c_4453);
    let mut groups: std::collections::BTreeMap<u32, Vec<usize>> = Default::default();
    for p in 0..n {
        groups.entry(classes.map_or(0, |c| c[p])).or_default().push(p);
    }
    let mut fold = vec![0; n];
    let mut next = 0;
    for positions in groups.values() {
        for i in rng.sample(positions.len(), positions.len()) {
            fold[positions[i]] = next % k;
            next += 1;
        }
    }
    fold
}

/// Deal a resolved training table's rows to `k` folds with `seed`. `file`
/// names the data in errors: fewer than 2 folds, more folds than rows, or
/// (classification) than the smallest class has rows.
pub fn folds(program: &Program, resolved: Resolved, k: usize, seed: u64, file: &str) -> Result<Folds, BindError> {
    let fail = |message: String, help: Option<String>| {
        BindError::Data(DataError { file: file.to_string(), line: None, column: None, message, help })
    };
    if k < 2 {
        return Err(fail(format!("cross-validation needs at least 2 folds, got {k}"), None));
    }
    let n = resolved.kept.len();
    if k > n {
        return Err(fail(format!("{k} folds need at least {k} rows, and the data has {n}"), None));
    }
    let classes: Option<Vec<u32>> =
        resolved.classes.as_ref().map(|all| resolved.kept.iter().map(|&r| all[r]).collect());
    if let Some(classes) = &classes {
        let mut counts: std::collections::BTreeMap<u32, usize> = Default::default();
        for &c in classes {
            *counts.entry(c).or_default() += 1;
        }
        if let Some((&class, &count)) = counts.iter().min_by_key(|(_, n)| **n)
            && count < k
        {
            let name = resolved
                .class_names(program)
                .and_then(|names| names.get(class as usize).cloned())
                .unwrap_or_else(|| class.to_string());
            return Err(fail(
                format!(
                    "{k} stratified folds need at least {k} rows of every class, and class `{}` has {count}",
                    super::shorten(&name)
                ),
                Some(format!("use --folds {} or fewer", count.max(2))),
            ));
        }
    }
    let fold = assign(n, classes.as_deref(), k, seed);
    Ok(Folds { k, fold, resolved })
}

impl Folds {
    /// Fold `i`'s training rows (every other fold) and held-out rows, bound
    /// with preprocessing fitted on the training rows.
    pub fn bind(&self, program: &Program, i: usize) -> Result<Bound, BindError> {
        let (mut train, mut held) = (Vec::new(), Vec::new());
        for (p, &row) in self.resolved.kept.iter().enumerate() {
            if self.fold[p] == i { held.push(row) } else { train.push(row) }
        }
        self.resolved.bind(program, &train, &held)
    }

    /// Rows held out in each fold.
    pub fn sizes(&self) -> Vec<usize> {
        let mut sizes = vec![0; self.k];
        for &f in &self.fold {
            sizes[f] += 1;
        }
        sizes
    }

    /// Rows of each class held out in fold `i` (classification only).
    pub fn class_counts(&self, i: usize) -> Option<Vec<usize>> {
        let classes = self.resolved.classes.as_ref()?;
        let k = classes.iter().filter(|&&c| c != u32::MAX).max().map_or(0, |&c| c as usize + 1);
        let mut counts = vec![0; k];
        for (p, &row) in self.resolved.kept.iter().enumerate() {
            if self.fold[p] == i
                && let Some(n) = counts.get_mut(classes[row] as usize)
            {
                *n += 1;
            }
        }
        Some(counts)
    }

    pub fn resolved(&self) -> &Resolved {
        &self.resolved
    }
}

#[cfg(test)]
mod tests {
    use super::assign;

    /// Counts per fold and class.
    fn table(fold: &[usize], classes: &[u32], k: usize, n_classes: usize) -> Vec<Vec<usize>> {
        let mut t = vec![vec![0; n_classes]; k];
        for (f, c) in fold.iter().zip(classes) {
            t[*f][*c as usize] += 1;
        }
        t
    }

    #[test]
    fn folds_partition_the_rows_and_stratify_within_one() {
        // 3 classes of 50, 37 and 13 rows, in a file sorted by class.
        let classes: Vec<u32> =
            [(0, 50), (1, 37), (2, 13)].iter().flat_map(|&(c, n)| std::iter::repeat_n(c, n)).collect();
        for k in [2, 3, 5, 13] {
            let fold = assign(classes.len(), Some(&classes), k, 7);
            // A partition: every row in exactly one fold (a fold index each), none empty.
            assert_eq!(fold.len(), classes.len());
            assert!(fold.iter().all(|&f| f < k));
            let t = table(&fold, &classes, k, 3);
            for c in 0..3 {
                let counts: Vec<usize> = t.iter().map(|row| row[c]).collect();
                let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
                assert!(hi - lo <= 1, "k {k}, class {c}: {counts:?}");
            }
            let sizes: Vec<usize> = t.iter().map(|row| row.iter().sum()).collect();
            let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(hi - lo <= 1 && *lo > 0, "k {k}: {sizes:?}");
            assert_eq!(sizes.iter().sum::<usize>(), classes.len());
        }
    }

    #[test]
    fn the_seed_decides_the_folds() {
        let a = assign(100, None, 5, 1);
        assert_eq!(a, assign(100, None, 5, 1));
        assert_ne!(a, assign(100, None, 5, 2));
        let mut sizes = [0; 5];
        a.iter().for_each(|&f| sizes[f] += 1);
        assert_eq!(sizes, [20; 5]);
        // Shuffled: not the rows in order.
        assert_ne!(a, (0..100).map(|i| i % 5).collect::<Vec<_>>());
    }
}
