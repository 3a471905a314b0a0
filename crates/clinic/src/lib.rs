//! The clinical domain (work in progress).
