//! [`StoreOrigin`]: whether opening a store found one or made one.

/// What opening a store found. `errand serve` says it at start, so that a store lost and
/// silently created anew (a data directory deleted, a wrong path or schema) is seen at once
/// rather than when jobs turn out to be missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOrigin {
    /// Nothing was there: errand created a new, empty store.
    Created,
    /// A store was there and errand opened it with its data.
    Existing,
}

impl std::fmt::Display for StoreOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StoreOrigin::Created => "created new and empty",
            StoreOrigin::Existing => "opened existing",
        })
    }
}
