//! Galera's key-kind matrix: how a key already in the certification index
//! relates to the same key in a newly delivered write-set.

use crate::writeset::KeyKind;

/// The relation between an indexed key and a new key of the same name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relation {
    /// Independent: neither aborts nor orders apply.
    Independent,
    /// The new write-set must apply after the indexed one, but may commit
    /// even if the indexed one committed after its read view.
    Dependency,
    /// The new write-set aborts if the indexed one committed after its read
    /// view; otherwise it must apply after it.
    Conflict,
}

/// The relation between an indexed key of kind `found` and a new key of kind
/// `new`.
///
/// | found \ new | shared | reference | update | exclusive |
/// |-------------|--------|-----------|--------|-----------|
/// | shared      | -      | -         | D      | D         |
/// | reference   | -      | -         | D      | C         |
/// | update      | D      | D         | C      | C         |
/// | exclusive   | C      | C         | C      | C         |
#[must_use]
pub const fn relation(found: KeyKind, new: KeyKind) -> Relation {
    use KeyKind::{Exclusive, Reference, Shared, Update};
    use Relation::{Conflict, Dependency, Independent};
    match (found, new) {
        (Exclusive, _) | (Update, Update | Exclusive) | (Reference, Exclusive) => Conflict,
        (Update, Shared | Reference) | (Reference, Update) | (Shared, Update | Exclusive) => {
            Dependency
        }
        (Shared | Reference, Shared | Reference) => Independent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(name: &str) -> KeyKind {
        match name {
            "shared" => KeyKind::Shared,
            "reference" => KeyKind::Reference,
            "update" => KeyKind::Update,
            "exclusive" => KeyKind::Exclusive,
            other => panic!("unknown kind {other}"),
        }
    }

    /// The matrix is pinned by a data file so the table a reviewer reads is
    /// the table that is tested.
    #[test]
    fn matrix_matches_testdata_table() {
        let table = include_str!("testdata/key_matrix.txt");
        let mut rows = 0;
        for line in table
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [found, new, expected] = fields[..] else {
                panic!("bad row: {line}")
            };
            let expected = match expected {
                "-" => Relation::Independent,
                "dependency" => Relation::Dependency,
                "conflict" => Relation::Conflict,
                other => panic!("unknown relation {other}"),
            };
            assert_eq!(relation(kind(found), kind(new)), expected, "row: {line}");
            rows += 1;
        }
        assert_eq!(rows, 16, "the table must cover every pair of kinds");
    }
}
