//! The SSH host key every node presents, so clients behind a load balancer see one
//! server. Taken, in order, from the file `SKILLSD_HOST_KEY` names (the operator's;
//! not stored), the database, the data dir's `ssh_host_ed25519_key` of a single-node
//! install (stored in the database for the other nodes), or made by the first node to
//! start (an ed25519 key; if two first nodes race, both keep the one stored first).

use russh::keys::PrivateKey;
use sqlx::PgPool;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    // (The causes are in the error's chain: `main` prints them after the message.)
    #[error("cannot read host key {0}")]
    Read(String, #[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot encode the host key")]
    Encode(#[source] russh::keys::ssh_key::Error),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

const ROW: &str = "ssh_host_ed25519_key";
const FILE: &str = "ssh_host_ed25519_key";

/// The host key, and where it came from (for the start banner).
pub async fn host_key(
    pool: &PgPool,
    data_dir: &Path,
    file: Option<&Path>,
) -> Result<(PrivateKey, String), IdentityError> {
    if let Some(path) = file {
        let key = load(path)?;
        return Ok((key, format!("the file {}", path.display())));
    }
    if let Some(key) = stored(pool).await? {
        write_public(data_dir, &key)?;
        return Ok((key, "the database".into()));
    }
    let local = data_dir.join(FILE);
    let (key, origin) = if local.is_file() {
        (
            load(&local)?,
            format!("{} (now in the database)", local.display()),
        )
    } else {
        let seed: [u8; 32] = rand::random();
        let key = PrivateKey::from(russh::keys::ssh_key::private::Ed25519Keypair::from_seed(
            &seed,
        ));
        (key, "a new key (now in the database)".to_string())
    };
    let text = key
        .to_openssh(russh::keys::ssh_key::LineEnding::LF)
        .map_err(IdentityError::Encode)?;
    sqlx::query!(
        "INSERT INTO server_identity (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        ROW,
        text.as_str(),
    )
    .execute(pool)
    .await?;
    // Another node may have stored its key first: everyone uses that one.
    let key = stored(pool).await?.unwrap_or(key);
    write_public(data_dir, &key)?;
    Ok((key, origin))
}

async fn stored(pool: &PgPool) -> Result<Option<PrivateKey>, IdentityError> {
    let text: Option<String> =
        sqlx::query_scalar!("SELECT value FROM server_identity WHERE name = $1", ROW)
            .fetch_optional(pool)
            .await?;
    text.map(|t| {
        PrivateKey::from_openssh(t.as_bytes())
            .map_err(|e| IdentityError::Read("in the database".into(), e.into()))
    })
    .transpose()
}

fn load(path: &Path) -> Result<PrivateKey, IdentityError> {
    russh::keys::load_secret_key(path, None)
        .map_err(|e| IdentityError::Read(path.display().to_string(), e.into()))
}

/// The public half in the data dir (`ssh_host_ed25519_key.pub`), for operators and
/// `known_hosts`.
fn write_public(data_dir: &Path, key: &PrivateKey) -> Result<(), IdentityError> {
    let public = key
        .public_key()
        .to_openssh()
        .map_err(IdentityError::Encode)?;
    std::fs::write(data_dir.join(format!("{FILE}.pub")), format!("{public}\n"))?;
    Ok(())
}

/// `SHA256:...` of the host key, as `ssh-keygen -lf` prints it.
pub fn fingerprint(key: &PrivateKey) -> String {
    key.public_key()
        .fingerprint(russh::keys::ssh_key::HashAlg::Sha256)
        .to_string()
}
