//! Rendering: pure functions from values to text or JSON on any `io::Write`.

pub mod events;
pub mod report;
pub mod summary;
