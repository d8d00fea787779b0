//! The test run's PostgreSQL: one private cluster (or `SKILLSD_TEST_DATABASE_URL`),
//! a fresh database per test.

use skillsd::localpg::LocalPg;
use std::path::Path;
use std::sync::OnceLock;

/// URL of a database where tests may `CREATE DATABASE`: `SKILLSD_TEST_DATABASE_URL`,
/// or a private cluster under /tmp started on first use.
pub(crate) fn admin_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("SKILLSD_TEST_DATABASE_URL") {
            return url;
        }
        let pg = LocalPg::new(Path::new("/tmp/skillsd-test-pg")).expect("PostgreSQL is installed");
        pg.ensure_running(false).expect("test PostgreSQL starts");
        pg.url("postgres")
    })
}

pub(crate) fn with_url_db(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let base = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

pub fn run_sql_admin(rt: &tokio::runtime::Runtime, sql: &str) {
    use sqlx::Connection;
    rt.block_on(async {
        let mut conn = sqlx::PgConnection::connect(admin_url())
            .await
            .expect("connect to admin db");
        sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut conn)
            .await
            .expect("admin sql");
    });
}

/// A fresh database (name, url) for tests that run skillsd as a child process.
pub fn fresh_database(rt: &tokio::runtime::Runtime) -> (String, String) {
    fresh_database_with(rt, "")
}

/// A fresh database created with extra options, e.g. `LOCALE 'tr_TR.UTF-8' TEMPLATE template0`.
pub fn fresh_database_with(rt: &tokio::runtime::Runtime, options: &str) -> (String, String) {
    let name = format!("skillsd_test_{}", uuid::Uuid::new_v4().simple());
    run_sql_admin(rt, &format!("CREATE DATABASE {name} {options}"));
    let url = with_url_db(admin_url(), &name);
    (name, url)
}
