//! One run of a definition as a real process.
