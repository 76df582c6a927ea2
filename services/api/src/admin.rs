//! `admin` subcommands (`moolai-api admin …`, and the same under `moolai admin …`): operator
//! accounts, API tokens and orchestrator enrollment tokens from the command line, straight against the store, for the first
//! superadmin and for recovery when nobody can log in.
//!
//! Secrets only ever go to stdout, once (a generated password, a new token); passwords are
//! read from stdin with `--password-stdin`, never from arguments (they would show in `ps` and
//! shell history). Nothing here logs a secret.

use std::io::{BufRead, Write};

use anyhow::Context;
use chrono::{Duration, Utc};
use clap::Subcommand;
use moolai_store::{
    Actor, CredentialKind, NewApiToken, NewOrchestratorCredential, NewOrganization, NewUser, Role,
    Store, StoreError, UserUpdate,
};

use crate::{auth, password, validation};

/// `admin` subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an operator account. Without --password-stdin a password is generated and
    /// printed once.
    CreateUser {
        #[arg(long)]
        username: String,
        /// superadmin, org_admin or viewer.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// An organization an org_admin or viewer may see (repeat for several).
        #[arg(long = "organization")]
        organizations: Vec<String>,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's password (and end their sessions). Without --password-stdin a password
    /// is generated and printed once.
    SetPassword {
        #[arg(long)]
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// List operator accounts.
    ListUsers,
    /// Create an API token for a machine; the token is printed once.
    CreateApiToken {
        #[arg(long)]
        name: String,
        /// superadmin, org_admin or viewer.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        #[arg(long = "organization")]
        organizations: Vec<String>,
        /// Days until the token stops working (never, when absent).
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// Create an enrollment token with which orchestrators register in an organization (created
    /// when missing); the token is printed once. For example, for `moolai simulate --token`.
    CreateEnrollmentToken {
        #[arg(long, default_value = "default")]
        organization: String,
        #[arg(long, default_value = "cli")]
        name: String,
        /// Days until the token stops working (never, when absent).
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("{s:?} is not a role: superadmin, org_admin or viewer"))
}

/// Who the audit log names for these commands.
fn actor() -> Actor {
    Actor {
        name: "cli:admin".to_owned(),
        client_addr: None,
    }
}

/// A password from the first line of `input` (`--password-stdin`), or a generated one that
/// is returned to be printed.
fn password_from(password_stdin: bool, input: &mut dyn BufRead) -> anyhow::Result<(String, bool)> {
    if !password_stdin {
        return Ok((generate_password(), true));
    }
    let mut line = String::new();
    input
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    validation::password(&password).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((password, false))
}

/// A generated password: 24 characters of an unambiguous alphabet (about 140 bits).
#[must_use]
pub fn generate_password() -> String {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..24)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// Runs one command against `store`, reading a password from `input` and writing what it
/// did (and any secret, once) to `out`.
///
/// # Errors
/// Bad arguments, or the store refuses (the name is taken, an organization is missing, …).
pub async fn run(
    command: AdminCommand,
    store: &dyn Store,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    match command {
        AdminCommand::CreateUser {
            username,
            role,
            organizations,
            password_stdin,
        } => {
            validation::username(&username).map_err(|e| anyhow::anyhow!("{e}"))?;
            let (password, generated) = password_from(password_stdin, input)?;
            let password_hash = password::hash_blocking(password.clone())
                .await
                .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))?;
            let user = store
                .create_user(
                    &NewUser {
                        username,
                        role,
                        password_hash,
                        organization_ids: organizations,
                    },
                    &actor(),
                )
                .await
                .context("cannot create the user")?;
            writeln!(
                out,
                "created user {} ({})",
                user.username,
                user.role.as_str()
            )?;
            if generated {
                writeln!(out, "password: {password}")?;
                writeln!(out, "(shown once; change it after logging in)")?;
            }
        }
        AdminCommand::SetPassword {
            username,
            password_stdin,
        } => {
            let (password, generated) = password_from(password_stdin, input)?;
            let password_hash = password::hash_blocking(password.clone())
                .await
                .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))?;
            store
                .update_user(
                    &username,
                    &UserUpdate {
                        password_hash: Some(password_hash),
                        ..UserUpdate::default()
                    },
                    &actor(),
                )
                .await
                .context("cannot set the password")?
                .with_context(|| format!("no user named {username}"))?;
            writeln!(out, "password of {username} set; their sessions ended")?;
            if generated {
                writeln!(out, "password: {password}")?;
            }
        }
        AdminCommand::ListUsers => {
            let mut page = 1;
            loop {
                let users = store.list_users(page, 100).await?;
                for u in &users.items {
                    writeln!(
                        out,
                        "{}\t{}\t{}\t{}",
                        u.username,
                        u.role.as_str(),
                        if u.disabled { "disabled" } else { "enabled" },
                        u.organization_ids.join(",")
                    )?;
                }
                if i64::from(page) * 100 >= users.total {
                    break;
                }
                page += 1;
            }
        }
        AdminCommand::CreateApiToken {
            name,
            role,
            organizations,
            expires_in_days,
        } => {
            validation::token_name(&name).map_err(|e| anyhow::anyhow!("{e}"))?;
            let token = auth::new_prefixed_token(auth::API_TOKEN_PREFIX);
            let record = store
                .create_api_token(
                    &NewApiToken {
                        name,
                        token_hash: auth::hash_token(&token),
                        role,
                        organization_ids: organizations,
                        expires_at: expires_in_days
                            .map(|d| Utc::now() + Duration::days(i64::from(d))),
                    },
                    &actor(),
                )
                .await
                .context("cannot create the API token")?;
            writeln!(
                out,
                "created API token {} ({}, {})",
                record.token_id,
                record.name,
                record.role.as_str()
            )?;
            writeln!(out, "token: {token}")?;
            writeln!(out, "(shown once)")?;
        }
        AdminCommand::CreateEnrollmentToken {
            organization,
            name,
            expires_in_days,
        } => {
            moolai_protocol::validate_id("organization", &organization)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            validation::token_name(&name).map_err(|e| anyhow::anyhow!("{e}"))?;
            let new_org = NewOrganization {
                organization_id: organization.clone(),
                name: organization.clone(),
                location: None,
                metadata: None,
                features: None,
                settings: None,
            };
            match store.create_organization(&new_org, &actor()).await {
                Ok(_) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e).context("cannot create the organization"),
            }
            let token = auth::new_prefixed_token(auth::ENROLLMENT_TOKEN_PREFIX);
            let record = store
                .create_orchestrator_credential(
                    &NewOrchestratorCredential {
                        kind: CredentialKind::Enrollment,
                        organization_id: organization.clone(),
                        orchestrator_id: None,
                        name: Some(name),
                        token_hash: auth::hash_token(&token),
                        expires_at: expires_in_days
                            .map(|d| Utc::now() + Duration::days(i64::from(d))),
                    },
                    &actor(),
                )
                .await
                .context("cannot create the enrollment token")?;
            writeln!(
                out,
                "created enrollment token {} for organization {organization}",
                record.credential_id
            )?;
            writeln!(out, "token: {token}")?;
            writeln!(out, "(shown once)")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_come_from_stdin_or_are_generated() {
        let mut input: &[u8] = b"a-long-enough-password\nignored\n";
        let (p, generated) = password_from(true, &mut input).unwrap();
        assert_eq!(p, "a-long-enough-password");
        assert!(!generated);
        let mut short: &[u8] = b"short\n";
        assert!(password_from(true, &mut short).is_err());
        let (p, generated) = password_from(false, &mut (&b""[..])).unwrap();
        assert!(generated);
        assert_eq!(p.len(), 24);
        assert_ne!(p, generate_password());
        assert!(parse_role("org_admin").is_ok());
        assert!(parse_role("root").is_err());
    }
}
