//! A sorted batch of keys applied to a sorted table by one walk beside it instead of a tree
//! search per key: when that pays, and the step that keeps batch and table in line.
//!
//! Contract: [`walk_beats_search`] is true once the batch is an eighth of the table or more,
//! [`most_of`] once a removal takes half of it (what stays is then built anew);
//! [`walk_budget`] is how many table entries a walk beside `n` keys may step over before a
//! search per key would have been cheaper (a search costs a few dozen comparisons, a step
//! one). [`take_if_next`], called with the table's keys in ascending order, answers whether
//! each is in the (ascending) batch, in O(1) amortized.
//! Never does: touch a table itself.

use std::borrow::Borrow;
use std::iter::Peekable;

/// One walk over a table of `table` entries beats `batch` searches.
pub fn walk_beats_search(batch: usize, table: usize) -> bool {
    batch.saturating_mul(8) >= table
}

/// A removal of `batch` keys takes half the table of `table` entries or more: building what
/// stays anew beats removing them one by one.
pub fn most_of(batch: usize, table: usize) -> bool {
    batch.saturating_mul(2) >= table
}

/// Entries a walk beside `n` sorted keys may step over before a search per key is cheaper.
pub fn walk_budget(n: usize) -> usize {
    n.saturating_mul(8).saturating_add(64)
}

/// Skip the batch's keys below `key`, then take `key` if it is next; true if it was.
pub fn take_if_next<T, K, I>(batch: &mut Peekable<I>, key: &K) -> bool
where
    T: Borrow<K>,
    K: Ord + ?Sized,
    I: Iterator<Item = T>,
{
    while batch.next_if(|b| b.borrow() < key).is_some() {}
    batch.next_if(|b| b.borrow() == key).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_if_next_finds_the_batch_keys_among_the_table_keys() {
        let batch = [2, 5, 6, 9];
        let mut wanted = batch.iter().peekable();
        let found: Vec<i32> = (0..10).filter(|k| take_if_next(&mut wanted, k)).collect();
        assert_eq!(found, batch);
        // Keys of the batch missing from the table are skipped, not matched later.
        let mut wanted = [1, 3, 4].into_iter().peekable();
        let found: Vec<i32> = [0, 2, 4]
            .into_iter()
            .filter(|k| take_if_next(&mut wanted, k))
            .collect();
        assert_eq!(found, [4]);
    }

    #[test]
    fn a_walk_pays_from_an_eighth_of_the_table() {
        assert!(walk_beats_search(125, 1000));
        assert!(!walk_beats_search(124, 1000));
        assert_eq!(walk_budget(10), 144);
        assert!(most_of(50, 100) && !most_of(49, 100));
    }
}
