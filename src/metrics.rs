//! Process-wide counters for `/metrics` (Prometheus text format, version 0.0.4).
//!
//! Written by hand on purpose. The maintained client (`prometheus-client`, the
//! Prometheus project's own) was weighed: it encodes OpenMetrics only (`# EOF`, a
//! `_total` suffix it adds itself, a different content type), so adopting it would
//! rename the series dashboards and alerts already scrape; and what it would replace
//! here is a dozen atomics and one text renderer with a test. Revisit if labels with
//! unbounded values (per repository, per user) are ever needed.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// Why a ref update (and a push) was refused: the `reason` label of
/// `skillsd_push_refusals_total`, and the reason each refused ref of a push record
/// carries ([`crate::receive::outcome`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// A skill does not pass its checks.
    InvalidSkills,
    /// The server's rules for refs: names, tags, deletions, the review gate, a change's
    /// push options.
    Policy,
    /// The pack could not be read, or its objects are missing or invalid.
    Unpack,
    /// The user may not push to the repository.
    Permission,
    /// The push's transaction failed: nothing was written.
    Database,
    /// The ref moved since the pusher looked (another push came first).
    Stale,
    /// The session ended (the client left, its time ran out, the server stopped).
    Cancelled,
    /// Valid, but not stored: another ref of an atomic push was refused.
    NotStored,
    /// `git push -o dry-run`: checked, nothing written.
    DryRun,
}

impl Reason {
    pub const ALL: [Reason; 9] = [
        Reason::InvalidSkills,
        Reason::Policy,
        Reason::Unpack,
        Reason::Permission,
        Reason::Database,
        Reason::Stale,
        Reason::Cancelled,
        Reason::NotStored,
        Reason::DryRun,
    ];
    pub fn label(self) -> &'static str {
        match self {
            Reason::InvalidSkills => "invalid_skills",
            Reason::Policy => "policy",
            Reason::Unpack => "unpack",
            Reason::Permission => "permission",
            Reason::Database => "database",
            Reason::Stale => "stale",
            Reason::Cancelled => "cancelled",
            Reason::NotStored => "not_stored",
            Reason::DryRun => "dry_run",
        }
    }
}

/// One gauge over rows read at scrape time: name, help, the value of a row.
pub type Gauge<T> = (&'static str, &'static str, fn(&T) -> f64);

/// Gauges over `rows` (mirrors, webhooks) in the text exposition: each gauge's `HELP`
/// and `TYPE` once, then one series per row with the row's `labels` (values escaped).
pub fn render_gauges<T>(
    rows: &[T],
    labels: impl Fn(&T) -> Vec<(&'static str, String)>,
    gauges: &[Gauge<T>],
) -> String {
    let mut o = String::new();
    for (name, help, value) in gauges {
        let lines = rows
            .iter()
            .map(|row| {
                let labels: Vec<String> = labels(row)
                    .into_iter()
                    .map(|(k, v)| {
                        format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
                    })
                    .collect();
                (format!("{{{}}}", labels.join(",")), value(row).to_string())
            })
            .collect();
        series(&mut o, name, help, "gauge", lines);
    }
    o
}

/// Upper bounds (seconds) of the cache sync latency histogram.
const SYNC_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

pub struct Metrics {
    pushes_accepted: AtomicU64,
    refusals: [AtomicU64; Reason::ALL.len()],
    validation_errors: AtomicU64,
    fetches: AtomicU64,
    active_sessions: AtomicI64,
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
    reconcile_runs: AtomicU64,
    sync_failures: AtomicU64,
    sync_buckets: [AtomicU64; 10],
    sync_count: AtomicU64,
    sync_sum_micros: AtomicU64,
    connections_refused: AtomicU64,
    /// Mirror deliveries: [in sync after it, not].
    mirror_pushes: [AtomicU64; 2],
    /// Webhook delivery attempts: [delivered, failed].
    webhook_attempts: [AtomicU64; 2],
    /// Files pushes checked: [as the pack streamed in, read after it].
    files_checked: [AtomicU64; 2],
}

impl Metrics {
    /// Every counter at zero.
    pub const fn new() -> Metrics {
        Metrics {
            pushes_accepted: AtomicU64::new(0),
            refusals: [const { AtomicU64::new(0) }; Reason::ALL.len()],
            validation_errors: AtomicU64::new(0),
            fetches: AtomicU64::new(0),
            active_sessions: AtomicI64::new(0),
            bytes_received: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            reconcile_runs: AtomicU64::new(0),
            sync_failures: AtomicU64::new(0),
            sync_buckets: [const { AtomicU64::new(0) }; 10],
            sync_count: AtomicU64::new(0),
            sync_sum_micros: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            mirror_pushes: [const { AtomicU64::new(0) }; 2],
            webhook_attempts: [const { AtomicU64::new(0) }; 2],
            files_checked: [const { AtomicU64::new(0) }; 2],
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

pub static METRICS: Metrics = Metrics::new();

/// The process's metrics.
pub fn global() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    pub fn push_accepted(&self) {
        self.pushes_accepted.fetch_add(1, Relaxed);
    }
    pub fn push_refused(&self, why: Reason) {
        self.refusals[why as usize].fetch_add(1, Relaxed);
    }
    pub fn validation_errors(&self, n: usize) {
        self.validation_errors.fetch_add(n as u64, Relaxed);
    }
    /// A connection closed at once because the connection cap was reached.
    pub fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Relaxed);
    }
    /// A mirror delivery ended (`ok`: the upstream has every ref).
    pub fn mirror_push(&self, ok: bool) {
        self.mirror_pushes[usize::from(!ok)].fetch_add(1, Relaxed);
    }
    pub fn webhook_delivered(&self) {
        self.webhook_attempts[0].fetch_add(1, Relaxed);
    }
    pub fn webhook_failed(&self) {
        self.webhook_attempts[1].fetch_add(1, Relaxed);
    }
    /// A push's files checked: `streaming` as its pack came, `after` read from it.
    pub fn files_checked(&self, streaming: usize, after: usize) {
        self.files_checked[0].fetch_add(streaming as u64, Relaxed);
        self.files_checked[1].fetch_add(after as u64, Relaxed);
    }
    pub fn fetch(&self) {
        self.fetches.fetch_add(1, Relaxed);
    }
    pub fn session_started(&self) {
        self.active_sessions.fetch_add(1, Relaxed);
    }
    pub fn session_ended(&self) {
        self.active_sessions.fetch_sub(1, Relaxed);
    }
    pub fn received(&self, n: usize) {
        self.bytes_received.fetch_add(n as u64, Relaxed);
    }
    pub fn sent(&self, n: usize) {
        self.bytes_sent.fetch_add(n as u64, Relaxed);
    }
    pub fn reconcile_run(&self) {
        self.reconcile_runs.fetch_add(1, Relaxed);
    }
    pub fn sync_failed(&self) {
        self.sync_failures.fetch_add(1, Relaxed);
    }
    pub fn sync_took(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        for (i, le) in SYNC_BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.sync_buckets[i].fetch_add(1, Relaxed);
            }
        }
        self.sync_count.fetch_add(1, Relaxed);
        self.sync_sum_micros
            .fetch_add(d.as_micros() as u64, Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let refused: u64 = self.refusals.iter().map(|a| a.load(Relaxed)).sum();
        let pushes = vec![
            (
                "{result=\"accepted\"}".to_string(),
                self.pushes_accepted.load(Relaxed).to_string(),
            ),
            ("{result=\"refused\"}".to_string(), refused.to_string()),
        ];
        series(
            &mut o,
            "skillsd_pushes_total",
            "Pushes by result.",
            "counter",
            pushes,
        );
        series(
            &mut o,
            "skillsd_push_refusals_total",
            "Refused pushes by reason.",
            "counter",
            self.refusal_lines(),
        );
        series(
            &mut o,
            "skillsd_mirror_pushes_total",
            "Mirror deliveries by this process, by result.",
            "counter",
            pair(&self.mirror_pushes, "in_sync", "failed"),
        );
        series(
            &mut o,
            "skillsd_webhook_attempts_total",
            "Webhook delivery attempts by this process, by result.",
            "counter",
            pair(&self.webhook_attempts, "delivered", "failed"),
        );
        series(
            &mut o,
            "skillsd_push_files_checked_total",
            "Files pushes checked, by when: as the pack streamed in, or read after it.",
            "counter",
            vec![
                (
                    "{when=\"streaming\"}".to_string(),
                    self.files_checked[0].load(Relaxed).to_string(),
                ),
                (
                    "{when=\"after\"}".to_string(),
                    self.files_checked[1].load(Relaxed).to_string(),
                ),
            ],
        );
        for (name, help, kind, value) in self.unlabelled() {
            series(&mut o, name, help, kind, vec![(String::new(), value)]);
        }
        series(
            &mut o,
            "skillsd_cache_sync_seconds",
            "Time to apply a push to the cache.",
            "histogram",
            self.sync_histogram(),
        );
        o
    }

    /// Refused pushes, one line per reason.
    fn refusal_lines(&self) -> Vec<(String, String)> {
        Reason::ALL
            .iter()
            .map(|r| {
                (
                    format!("{{reason=\"{}\"}}", r.label()),
                    self.refusals[*r as usize].load(Relaxed).to_string(),
                )
            })
            .collect()
    }

    /// The series without labels: (name, help, kind, value).
    fn unlabelled(&self) -> [(&'static str, &'static str, &'static str, String); 8] {
        [
            (
                "skillsd_connections_refused_total",
                "Connections closed at once because the connection cap was reached.",
                "counter",
                self.connections_refused.load(Relaxed).to_string(),
            ),
            (
                "skillsd_validation_errors_total",
                "Problems reported to pushers.",
                "counter",
                self.validation_errors.load(Relaxed).to_string(),
            ),
            (
                "skillsd_fetches_total",
                "Clones and fetches served.",
                "counter",
                self.fetches.load(Relaxed).to_string(),
            ),
            (
                "skillsd_active_sessions",
                "Git and command sessions running now.",
                "gauge",
                self.active_sessions.load(Relaxed).to_string(),
            ),
            (
                "skillsd_received_bytes_total",
                "Bytes received from git clients.",
                "counter",
                self.bytes_received.load(Relaxed).to_string(),
            ),
            (
                "skillsd_sent_bytes_total",
                "Bytes sent to git clients.",
                "counter",
                self.bytes_sent.load(Relaxed).to_string(),
            ),
            (
                "skillsd_reconcile_runs_total",
                "Reconciles of the cache with git.",
                "counter",
                self.reconcile_runs.load(Relaxed).to_string(),
            ),
            (
                "skillsd_cache_sync_failures_total",
                "Cache writes that failed after the refs moved.",
                "counter",
                self.sync_failures.load(Relaxed).to_string(),
            ),
        ]
    }

    /// The cache sync's histogram: its buckets, sum and count (name suffixes with
    /// their labels).
    fn sync_histogram(&self) -> Vec<(String, String)> {
        let mut hist: Vec<(String, String)> = SYNC_BUCKETS
            .iter()
            .enumerate()
            .map(|(i, le)| {
                (
                    format!("_bucket{{le=\"{le}\"}}"),
                    self.sync_buckets[i].load(Relaxed).to_string(),
                )
            })
            .collect();
        let count = self.sync_count.load(Relaxed);
        hist.push(("_bucket{le=\"+Inf\"}".into(), count.to_string()));
        hist.push((
            "_sum".into(),
            format!("{}", self.sync_sum_micros.load(Relaxed) as f64 / 1e6),
        ));
        hist.push(("_count".into(), count.to_string()));
        hist
    }
}

/// One metric in the text exposition: its help and type, then a line per series
/// (`labels` are the name's suffix: `{...}` or `_bucket{...}`). The MCP server's
/// counters are written by it too (`agents::mcp::metrics`).
pub fn series(o: &mut String, name: &str, help: &str, kind: &str, lines: Vec<(String, String)>) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in lines {
        let _ = writeln!(o, "{name}{labels} {value}");
    }
}

/// A two-valued counter by result: `ok` and `bad`.
fn pair(a: &[AtomicU64; 2], ok: &str, bad: &str) -> Vec<(String, String)> {
    vec![
        (
            format!("{{result=\"{ok}\"}}"),
            a[0].load(Relaxed).to_string(),
        ),
        (
            format!("{{result=\"{bad}\"}}"),
            a[1].load(Relaxed).to_string(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_have_help_type_and_a_series_per_row_with_escaped_labels() {
        let rows = [("a\"b", 1.0), ("c", 2.5)];
        let text = render_gauges(
            &rows,
            |r| vec![("repo", r.0.to_string())],
            &[("x_value", "A value.", |r| r.1)],
        );
        assert_eq!(
            text,
            "# HELP x_value A value.\n# TYPE x_value gauge\n\
             x_value{repo=\"a\\\"b\"} 1\nx_value{repo=\"c\"} 2.5\n"
        );
    }

    #[test]
    fn the_exposition_names_each_series_with_its_help_and_type() {
        let m = Metrics::new();
        m.push_accepted();
        m.push_accepted();
        m.push_refused(Reason::Stale);
        m.validation_errors(3);
        m.files_checked(2, 1);
        m.fetch();
        m.sync_took(std::time::Duration::from_millis(30));
        assert_eq!(m.render(), EXPOSITION);
    }

    /// What scrapers read of [`Metrics::new`] after two accepted pushes, one stale,
    /// three problems, three files checked (two as the pack came), one fetch and a
    /// cache sync of 30 ms.
    const EXPOSITION: &str = r#"# HELP skillsd_pushes_total Pushes by result.
# TYPE skillsd_pushes_total counter
skillsd_pushes_total{result="accepted"} 2
skillsd_pushes_total{result="refused"} 1
# HELP skillsd_push_refusals_total Refused pushes by reason.
# TYPE skillsd_push_refusals_total counter
skillsd_push_refusals_total{reason="invalid_skills"} 0
skillsd_push_refusals_total{reason="policy"} 0
skillsd_push_refusals_total{reason="unpack"} 0
skillsd_push_refusals_total{reason="permission"} 0
skillsd_push_refusals_total{reason="database"} 0
skillsd_push_refusals_total{reason="stale"} 1
skillsd_push_refusals_total{reason="cancelled"} 0
skillsd_push_refusals_total{reason="not_stored"} 0
skillsd_push_refusals_total{reason="dry_run"} 0
# HELP skillsd_mirror_pushes_total Mirror deliveries by this process, by result.
# TYPE skillsd_mirror_pushes_total counter
skillsd_mirror_pushes_total{result="in_sync"} 0
skillsd_mirror_pushes_total{result="failed"} 0
# HELP skillsd_webhook_attempts_total Webhook delivery attempts by this process, by result.
# TYPE skillsd_webhook_attempts_total counter
skillsd_webhook_attempts_total{result="delivered"} 0
skillsd_webhook_attempts_total{result="failed"} 0
# HELP skillsd_push_files_checked_total Files pushes checked, by when: as the pack streamed in, or read after it.
# TYPE skillsd_push_files_checked_total counter
skillsd_push_files_checked_total{when="streaming"} 2
skillsd_push_files_checked_total{when="after"} 1
# HELP skillsd_connections_refused_total Connections closed at once because the connection cap was reached.
# TYPE skillsd_connections_refused_total counter
skillsd_connections_refused_total 0
# HELP skillsd_validation_errors_total Problems reported to pushers.
# TYPE skillsd_validation_errors_total counter
skillsd_validation_errors_total 3
# HELP skillsd_fetches_total Clones and fetches served.
# TYPE skillsd_fetches_total counter
skillsd_fetches_total 1
# HELP skillsd_active_sessions Git and command sessions running now.
# TYPE skillsd_active_sessions gauge
skillsd_active_sessions 0
# HELP skillsd_received_bytes_total Bytes received from git clients.
# TYPE skillsd_received_bytes_total counter
skillsd_received_bytes_total 0
# HELP skillsd_sent_bytes_total Bytes sent to git clients.
# TYPE skillsd_sent_bytes_total counter
skillsd_sent_bytes_total 0
# HELP skillsd_reconcile_runs_total Reconciles of the cache with git.
# TYPE skillsd_reconcile_runs_total counter
skillsd_reconcile_runs_total 0
# HELP skillsd_cache_sync_failures_total Cache writes that failed after the refs moved.
# TYPE skillsd_cache_sync_failures_total counter
skillsd_cache_sync_failures_total 0
# HELP skillsd_cache_sync_seconds Time to apply a push to the cache.
# TYPE skillsd_cache_sync_seconds histogram
skillsd_cache_sync_seconds_bucket{le="0.005"} 0
skillsd_cache_sync_seconds_bucket{le="0.01"} 0
skillsd_cache_sync_seconds_bucket{le="0.025"} 0
skillsd_cache_sync_seconds_bucket{le="0.05"} 1
skillsd_cache_sync_seconds_bucket{le="0.1"} 1
skillsd_cache_sync_seconds_bucket{le="0.25"} 1
skillsd_cache_sync_seconds_bucket{le="0.5"} 1
skillsd_cache_sync_seconds_bucket{le="1"} 1
skillsd_cache_sync_seconds_bucket{le="2.5"} 1
skillsd_cache_sync_seconds_bucket{le="10"} 1
skillsd_cache_sync_seconds_bucket{le="+Inf"} 1
skillsd_cache_sync_seconds_sum 0.03
skillsd_cache_sync_seconds_count 1
"#;
}
