//! skillsd: an SSH git server for a repository of skills (Markdown with YAML
//! frontmatter) that validates every push before anything is written and keeps a
//! PostgreSQL cache of the default branch in step with git.
//!
//! The path of a push, top to bottom: [`ssh`] → [`protocol`] → [`receive`]
//! (the pack into an [`incoming`] quarantine, pre-receive, then one transaction that
//! publishes refs and pack ([`storage`]) and writes the [`cache`]). See ARCHITECTURE.md.

pub mod agents;
pub mod alloc;
pub mod artifact;
pub mod cache;
pub mod changes;
pub mod check;
pub mod commands;
pub mod commit_tree;
pub mod config;
pub mod db;
pub mod deliver;
pub mod edit;
pub mod hook;
pub mod import;
pub mod incoming;
pub mod localpg;
pub mod maintenance;
pub mod metrics;
pub mod net;
pub mod parallel;
pub mod protocol;
pub mod receive;
pub mod repos;
pub mod review;
pub mod server;
pub mod signing;
pub mod skills;
pub mod ssh;
pub mod storage;
pub mod suggest;
pub mod upstream;
pub mod web;
