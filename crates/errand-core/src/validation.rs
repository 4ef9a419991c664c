//! The one error type for input that breaks a domain rule.

/// Input that breaks a domain rule. `field` names what was wrong so an API can say so.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// Which field (or path) was wrong, e.g. `queue` or `jobs[3].payload`.
    pub field: String,
    /// What was wrong with it, in words a user can act on.
    pub message: String,
}

impl ValidationError {
    /// Builds an error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Prefixes the field, so `payload` inside the fourth job becomes `jobs[3].payload`.
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = if self.field.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}.{}", self.field)
        };
        self
    }
}
