//! The MCP server's counters, on `/metrics` beside the process's others
//! ([`crate::metrics`]): requests by method, errors by method, and the sessions and
//! change subscriptions open. One set per server ([`super::Mcp`]); the method label
//! takes only the methods MCP and its skills extension define ([`super::KNOWN_METHODS`])
//! and `other` (any other method, or a request refused before its method was read: a
//! body too large or not JSON, an unknown repository), so the series stay few whatever
//! clients send.

use crate::metrics::series;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

const METHODS: usize = super::KNOWN_METHODS.len() + 1;

/// Requests and errors by method.
pub struct Counters {
    requests: [AtomicU64; METHODS],
    errors: [AtomicU64; METHODS],
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            requests: [const { AtomicU64::new(0) }; METHODS],
            errors: [const { AtomicU64::new(0) }; METHODS],
        }
    }
}

/// The label of `method`: itself when MCP defines it, else `other`.
fn index(method: &str) -> usize {
    super::KNOWN_METHODS
        .iter()
        .position(|m| *m == method)
        .unwrap_or(METHODS - 1)
}

fn label(i: usize) -> &'static str {
    super::KNOWN_METHODS.get(i).copied().unwrap_or("other")
}

impl Counters {
    /// A JSON-RPC request for `method` arrived.
    pub fn request(&self, method: &str) {
        self.requests[index(method)].fetch_add(1, Relaxed);
    }

    /// A request for `method` was answered with an error (a JSON-RPC error, or a tool
    /// result marked `isError`); `None`: a body refused before a method could be read.
    pub fn error(&self, method: Option<&str>) {
        self.errors[method.map_or(METHODS - 1, index)].fetch_add(1, Relaxed);
    }

    /// How many requests for `method` arrived, and how many were answered with errors.
    pub fn counts(&self, method: &str) -> (u64, u64) {
        let i = index(method);
        (self.requests[i].load(Relaxed), self.errors[i].load(Relaxed))
    }

    /// The Prometheus text exposition, with the sessions and subscriptions open now.
    pub fn render(&self, sessions: usize, subscriptions: usize) -> String {
        let mut o = String::new();
        let gauges = [
            (
                "skillsd_mcp_sessions_open",
                "MCP sessions open now (the handshake era's Mcp-Session-Id).",
                sessions,
            ),
            (
                "skillsd_mcp_subscriptions_open",
                "MCP change subscriptions (subscriptions/listen streams) open now.",
                subscriptions,
            ),
        ];
        for (name, help, value) in gauges {
            series(
                &mut o,
                name,
                help,
                "gauge",
                vec![(String::new(), value.to_string())],
            );
        }
        let counters = [
            (
                "skillsd_mcp_requests_total",
                "MCP JSON-RPC requests received, by method.",
                &self.requests,
            ),
            (
                "skillsd_mcp_errors_total",
                "MCP requests answered with an error (JSON-RPC errors and tool results marked isError), by method.",
                &self.errors,
            ),
        ];
        for (name, help, values) in counters {
            let lines = values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    (
                        format!("{{method=\"{}\"}}", label(i)),
                        v.load(Relaxed).to_string(),
                    )
                })
                .collect();
            series(&mut o, name, help, "counter", lines);
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_mcp_defines_are_labels_and_the_rest_is_other() {
        let c = Counters::default();
        c.request("skills/list");
        c.request("skills/list");
        c.request("x/evil\"label\n");
        c.error(Some("skills/list"));
        c.error(None);
        assert_eq!(c.counts("skills/list"), (2, 1));
        assert_eq!(c.counts("other"), (1, 1));
        let text = c.render(3, 1);
        assert!(text.contains("skillsd_mcp_sessions_open 3\n"), "{text}");
        assert!(
            text.contains("skillsd_mcp_subscriptions_open 1\n"),
            "{text}"
        );
        assert!(text.contains("skillsd_mcp_requests_total{method=\"skills/list\"} 2\n"));
        assert!(text.contains("skillsd_mcp_requests_total{method=\"other\"} 1\n"));
        assert!(text.contains("skillsd_mcp_errors_total{method=\"other\"} 1\n"));
        assert!(!text.contains("evil"), "{text}");
        assert!(
            text.starts_with(
                "# HELP skillsd_mcp_sessions_open MCP sessions open now (the handshake era's \
                 Mcp-Session-Id).\n# TYPE skillsd_mcp_sessions_open gauge\n\
                 skillsd_mcp_sessions_open 3\n# HELP skillsd_mcp_subscriptions_open "
            ),
            "{text}"
        );
        // One HELP and TYPE per series name.
        assert_eq!(text.matches("# TYPE skillsd_mcp_requests_total").count(), 1);
    }
}
