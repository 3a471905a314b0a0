//! Persistence (work in progress).
