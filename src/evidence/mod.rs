//! Lineage manifest, hashing, signatures and bundle verification.

pub mod bundle;
pub mod manifest;
pub mod signing;
