//! The integration tests, one module per concern, built as one test binary: one link
//! instead of one per file keeps the build's disk and time small (54 binaries of
//! ~150 MB each filled CI's disk). Run one module with `cargo test --test suite
//! review::`, one test with its full name. Each test still gets its own database, data
//! directory and server; tests that need a process of their own (memory, limits,
//! kills, a locale's verdict) run skillsd as a child process (`common::ChildFixture`).
//! Three files are binaries of their own, as `Cargo.toml` lists them: `http.rs` and
//! `push_outcome.rs` read the process-wide counters of `/metrics`, which only their
//! own in-process server may move; `pending_lists.rs` needs its server to be the
//! process's one cleaner of the GIN pending lists.

mod common;

mod access;
mod adoption;
mod advice;
mod agents;
mod audit_web;
mod bootstrap;
mod cache;
mod clone_memory;
mod concurrency;
mod content_security;
mod corpus;
mod crash;
mod editing;
mod editor_web;
mod exhaustion;
mod first_hour;
mod fuzz_validate;
mod hooks;
mod hostile;
mod hostile_push;
mod import;
mod interop;
mod layers;
mod limits;
mod locale;
mod maintenance;
mod marketplace;
mod mcp;
mod mirrors;
mod namespaces;
mod nodes;
mod outage;
mod partial_clone;
mod paths;
mod properties;
mod protocol;
mod push_and_clone;
mod review;
mod review_web;
mod rules;
mod search_vector;
mod shallow;
mod shutdown;
mod signed_commits;
mod ssh_commands;
mod streaming_checks;
mod upstream_push;
mod versions;
mod web;
mod webhooks;
