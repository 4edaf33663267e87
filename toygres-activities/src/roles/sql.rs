//! The statements that set an instance's roles up, and the superuser session that runs them.

use super::{ADMIN, AdminTarget, MONITOR, OWNER, RolePasswords, RolesError, scram_verifier};
use crate::backend::Backend;

/// The predefined roles that reach the server's files or run programs on its host.
pub(crate) const SERVER_ACCESS_ROLES: [&str; 3] = [
    "pg_read_server_files",
    "pg_write_server_files",
    "pg_execute_server_program",
];

/// `value` as an SQL string literal.
pub(crate) fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The statements (run in one transaction, as a superuser, in database `postgres`) that make
/// the three roles what [`super`] says, with fresh SCRAM verifiers of `passwords`.
pub(crate) fn configure(major: u32, passwords: &RolePasswords) -> Vec<String> {
    role_statements(major, Some(passwords))
}

/// The same statements for a template cluster: the roles as [`configure`] makes them, with no
/// password at all (nobody can log in with one until a copy gets its own).
pub(crate) fn template(major: u32) -> Vec<String> {
    role_statements(major, None)
}

/// `PASSWORD '<verifier>'` of `password`, or `PASSWORD NULL`.
fn password_clause(password: Option<&str>) -> String {
    match password {
        Some(password) => format!("PASSWORD {}", literal(&scram_verifier(password))),
        None => "PASSWORD NULL".into(),
    }
}

fn role_statements(major: u32, passwords: Option<&RolePasswords>) -> Vec<String> {
    let server_roles = SERVER_ACCESS_ROLES
        .iter()
        .map(|role| literal(role))
        .collect::<Vec<_>>()
        .join(", ");
    let mut statements = vec![
        format!(
            "DO $$ BEGIN \
               IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = {owner}) THEN CREATE ROLE {OWNER}; END IF; \
               IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = {monitor}) THEN CREATE ROLE {MONITOR}; END IF; \
             END $$",
            owner = literal(OWNER),
            monitor = literal(MONITOR),
        ),
        format!(
            "ALTER ROLE {OWNER} WITH LOGIN NOSUPERUSER CREATEDB CREATEROLE NOREPLICATION NOBYPASSRLS INHERIT {}",
            password_clause(passwords.map(|p| p.owner.as_str()))
        ),
        format!(
            "ALTER ROLE {MONITOR} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT CONNECTION LIMIT 5 {}",
            password_clause(passwords.map(|p| p.monitor.as_str()))
        ),
        format!("GRANT pg_monitor TO {MONITOR}"),
        format!(
            "ALTER ROLE {ADMIN} WITH LOGIN SUPERUSER {}",
            password_clause(passwords.map(|p| p.admin.as_str()))
        ),
        format!("ALTER DATABASE postgres OWNER TO {OWNER}"),
        // Nobody but superusers holds the roles that reach the server's files or programs.
        format!(
            "DO $$ DECLARE r record; BEGIN \
               FOR r IN SELECT g.rolname AS granted, m.rolname AS member \
                 FROM pg_catalog.pg_auth_members a \
                 JOIN pg_catalog.pg_roles g ON g.oid = a.roleid \
                 JOIN pg_catalog.pg_roles m ON m.oid = a.member \
                 WHERE g.rolname IN ({server_roles}) \
               LOOP EXECUTE format('REVOKE %I FROM %I', r.granted, r.member); END LOOP; \
             END $$"
        ),
    ];
    if major < 16 {
        // Before PostgreSQL 16, CREATEROLE may grant any role that is not a superuser, so the
        // owner could grant itself pg_execute_server_program. Marking these three NOLOGIN
        // predefined roles SUPERUSER makes granting them a superuser's act, as it is in 16.
        // (A member does not become a superuser: the attribute is not inherited.)
        statements.push(format!(
            "UPDATE pg_catalog.pg_authid SET rolsuper = true WHERE rolname IN ({server_roles}) AND NOT rolsuper"
        ));
    }
    statements
}

/// `ALTER ROLE role PASSWORD '<verifier>'` for `password`. The role must be one of the
/// instance's own roles ([`OWNER`]): nothing else is ever altered through here.
pub(crate) fn set_password(role: &str, password: &str) -> Result<String, RolesError> {
    if role != OWNER {
        return Err(RolesError::Refused(format!(
            "only the owner's password is reset, not {role}'s"
        )));
    }
    Ok(format!(
        "ALTER ROLE {OWNER} PASSWORD {}",
        literal(&scram_verifier(password))
    ))
}

/// A connection to an instance as a superuser, with a search path that no tenant object can
/// shadow.
pub(crate) struct AdminSession {
    client: tokio_postgres::Client,
    driver: tokio::task::JoinHandle<()>,
}

impl AdminSession {
    /// Connects to `database` of `target` as `target.user`.
    pub(crate) async fn open(
        backend: &dyn Backend,
        target: &AdminTarget,
        database: &str,
    ) -> Result<Self, RolesError> {
        let stream = backend.dial(target.instance(), &target.endpoint).await?;
        let mut config = tokio_postgres::Config::new();
        config
            .user(&target.user)
            .dbname(database)
            .password(target.password.as_bytes())
            .application_name("toygres-admin")
            .options(
                "-c search_path=pg_catalog,pg_temp -c statement_timeout=60000 \
                 -c default_transaction_read_only=off -c lock_timeout=30000",
            );
        let (client, connection) = config
            .connect_raw(stream, tokio_postgres::NoTls)
            .await
            .map_err(describe)?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self { client, driver })
    }

    /// Runs `statements` in one transaction.
    pub(crate) async fn run_in_transaction(&self, statements: &[String]) -> Result<(), RolesError> {
        let mut script = String::from("BEGIN;\n");
        for statement in statements {
            script.push_str(statement);
            script.push_str(";\n");
        }
        script.push_str("COMMIT;");
        self.client.batch_execute(&script).await.map_err(describe)
    }

    /// Runs one statement on its own.
    pub(crate) async fn execute(&self, statement: &str) -> Result<(), RolesError> {
        self.client.batch_execute(statement).await.map_err(describe)
    }

    /// The rows of `query`.
    pub(crate) async fn query(&self, query: &str) -> Result<Vec<tokio_postgres::Row>, RolesError> {
        self.client.query(query, &[]).await.map_err(describe)
    }

    /// The first column of every row of `query`, as text.
    pub(crate) async fn texts(&self, query: &str) -> Result<Vec<String>, RolesError> {
        let rows = self.client.query(query, &[]).await.map_err(describe)?;
        rows.iter()
            .map(|row| row.try_get::<_, String>(0).map_err(describe))
            .collect()
    }
}

impl Drop for AdminSession {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// The server's message when there is one, else the error and its causes.
pub(crate) fn describe(error: tokio_postgres::Error) -> RolesError {
    if let Some(db) = error.as_db_error() {
        // Data exceptions (22), syntax or access rule violations (42), unsupported features
        // (0A): the statement itself is refused, and will be again.
        let class = db.code().code().get(..2).unwrap_or_default();
        let message = db.message().to_string();
        return if ["22", "42", "0A"].contains(&class) {
            RolesError::Refused(message)
        } else {
            RolesError::Postgres(message)
        };
    }
    let mut detail = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !detail.contains(&cause_text) {
            detail = format!("{detail}: {cause_text}");
        }
        source = cause.source();
    }
    RolesError::Postgres(detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passwords() -> RolePasswords {
        RolePasswords {
            owner: "owner-password-1".into(),
            admin: "admin-password-1".into(),
            monitor: "monitor-password-1".into(),
        }
    }

    #[test]
    fn no_plaintext_password_reaches_a_statement() {
        let statements = configure(15, &passwords()).join("\n");
        for password in ["owner-password-1", "admin-password-1", "monitor-password-1"] {
            assert!(!statements.contains(password));
        }
        assert_eq!(statements.matches("SCRAM-SHA-256$4096:").count(), 3);
    }

    #[test]
    fn only_versions_before_16_mark_the_server_access_roles() {
        assert!(
            configure(15, &passwords())
                .iter()
                .any(|s| s.contains("pg_authid"))
        );
        assert!(
            !configure(16, &passwords())
                .iter()
                .any(|s| s.contains("pg_authid"))
        );
    }

    #[test]
    fn a_password_reset_sends_a_verifier_and_only_for_the_owner() -> Result<(), RolesError> {
        let statement = set_password(OWNER, "new-owner-password-1")?;
        assert!(statement.starts_with("ALTER ROLE postgres PASSWORD 'SCRAM-SHA-256$4096:"));
        assert!(!statement.contains("new-owner-password-1"));
        assert!(set_password(ADMIN, "x").is_err());
        Ok(())
    }

    #[test]
    fn literals_are_quoted() {
        assert_eq!(literal("it's"), "'it''s'");
    }
}
