//! Moving an instance made before the control plane had roles of its own onto them.
//!
//! In such an instance the owner `postgres` is the bootstrap superuser (the role with oid 10),
//! which owns the system catalogs and built-in functions: demoting it is not enough (it could
//! still read server files through functions it owns). So the conversion, connected first as
//! that superuser and then as the new `toygres_admin`:
//! 1. creates `toygres_admin` (a superuser) with its password;
//! 2. renames the bootstrap superuser to `toygres_bootstrap` (no login, no password) and ends
//!    its sessions, then creates the owner `postgres` anew, with the owner's unchanged password,
//!    and `toygres_monitor` ([`super::configure`]);
//! 3. in every database, gives the owner what the old owner created (databases, schemas,
//!    tables, views, sequences, routines, types, large objects, ...), drops event triggers
//!    (superuser-only objects that would run tenant code in the control plane's sessions), and
//!    takes superuser, replication and bypass-RLS from every other role.
//!
//! Every step is idempotent: an interrupted conversion is run again from the start.

use super::sql::{self, AdminSession, literal};
use super::{ADMIN, AdminTarget, OWNER, RolePasswords, RolesError, major_version, scram_verifier};
use crate::backend::{Backend, Endpoint};
use std::time::Duration;

/// The name the bootstrap superuser of a converted instance gets.
pub const BOOTSTRAP: &str = "toygres_bootstrap";

/// What a conversion did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Converted {
    /// Databases whose objects were handed to the owner.
    pub databases: Vec<String>,
    /// Roles that lost superuser, replication or bypass-RLS.
    pub demoted_roles: Vec<String>,
}

/// Converts the instance at `endpoint` whose owner `postgres` (password `passwords.owner`) is
/// still its bootstrap superuser, or finishes an interrupted conversion.
pub async fn convert(
    backend: &dyn Backend,
    instance: crate::backend::InstanceRef<'_>,
    endpoint: &Endpoint,
    postgres_version: &str,
    passwords: &RolePasswords,
    timeout: Duration,
) -> Result<Converted, RolesError> {
    let major = major_version(postgres_version)?;
    let admin = AdminTarget {
        name: instance.name.clone(),
        namespace: instance.namespace.map(str::to_string),
        endpoint: endpoint.clone(),
        user: ADMIN.to_string(),
        password: passwords.admin.clone(),
    };
    super::within(timeout, async {
        // 1. The admin role, created by the old superuser unless a first run already did.
        if AdminSession::open(backend, &admin, "postgres").await.is_err() {
            let old = AdminTarget {
                user: OWNER.to_string(),
                password: passwords.owner.clone(),
                ..admin.clone()
            };
            let session = AdminSession::open(backend, &old, "postgres").await?;
            session
                .run_in_transaction(&[
                    format!(
                        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = {}) \
                         THEN CREATE ROLE {ADMIN}; END IF; END $$",
                        literal(ADMIN)
                    ),
                    format!(
                        "ALTER ROLE {ADMIN} WITH LOGIN SUPERUSER PASSWORD {}",
                        literal(&scram_verifier(&passwords.admin))
                    ),
                ])
                .await?;
        }
        let session = AdminSession::open(backend, &admin, "postgres").await?;

        // 2. The bootstrap superuser steps aside; the owner and the monitor are made.
        let mut statements = vec![format!(
            "DO $$ BEGIN \
               IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE oid = 10 AND rolname = {owner}) THEN \
                 ALTER ROLE {OWNER} RENAME TO {BOOTSTRAP}; \
               END IF; \
             END $$",
            owner = literal(OWNER),
        )];
        statements.push(format!(
            "DO $$ BEGIN IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE oid = 10 AND rolname = {bootstrap}) THEN \
               ALTER ROLE {BOOTSTRAP} WITH NOLOGIN PASSWORD NULL; END IF; END $$",
            bootstrap = literal(BOOTSTRAP),
        ));
        statements.extend(sql::configure(major, passwords));
        session.run_in_transaction(&statements).await?;
        // Sessions opened as the old owner still run as a superuser: end them (clients
        // reconnect as the new owner, with the same password).
        session
            .execute(
                "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity \
                 WHERE usesysid = 10 AND pid <> pg_catalog.pg_backend_pid()",
            )
            .await?;
        let demoted_roles = session
            .texts(&format!(
                "SELECT rolname::text FROM pg_catalog.pg_roles \
                 WHERE (rolsuper OR rolreplication OR rolbypassrls) AND oid <> 10 \
                   AND rolname NOT IN ({}) AND rolname NOT LIKE 'pg\\_%' ORDER BY 1",
                literal(ADMIN)
            ))
            .await?;
        for role in &demoted_roles {
            session
                .execute(&format!(
                    "ALTER ROLE \"{}\" WITH NOSUPERUSER NOREPLICATION NOBYPASSRLS",
                    role.replace('"', "\"\"")
                ))
                .await?;
        }

        // 3. What the old owner made, database by database.
        let databases = session
            .texts(
                "SELECT datname::text FROM pg_catalog.pg_database \
                 WHERE datallowconn AND NOT datistemplate ORDER BY 1",
            )
            .await?;
        drop(session);
        for database in &databases {
            let session = AdminSession::open(backend, &admin, database).await?;
            session
                .run_in_transaction(&[
                    format!(
                        "ALTER DATABASE \"{}\" OWNER TO {OWNER}",
                        database.replace('"', "\"\"")
                    ),
                    HAND_OVER_OBJECTS.to_string(),
                ])
                .await?;
        }
        Ok(Converted {
            databases,
            demoted_roles,
        })
    })
    .await
}

/// Gives the owner every object of the current database that the bootstrap superuser (oid 10)
/// owns and that is neither part of the system (oid below 16384) nor an extension's member, and
/// drops event triggers.
const HAND_OVER_OBJECTS: &str = r#"DO $$
DECLARE
  r record;
  first_normal constant oid := 16384;
BEGIN
  FOR r IN SELECT evtname FROM pg_catalog.pg_event_trigger LOOP
    EXECUTE format('DROP EVENT TRIGGER %I', r.evtname);
  END LOOP;
  FOR r IN SELECT n.nspname FROM pg_catalog.pg_namespace n
    WHERE n.nspowner = 10 AND n.oid >= first_normal
      AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
        WHERE d.classid = 'pg_catalog.pg_namespace'::regclass AND d.objid = n.oid AND d.deptype = 'e')
  LOOP
    EXECUTE format('ALTER SCHEMA %I OWNER TO postgres', r.nspname);
  END LOOP;
  FOR r IN SELECT c.oid, c.relkind FROM pg_catalog.pg_class c
    WHERE c.relowner = 10 AND c.oid >= first_normal AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
      AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
        WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid
          AND (d.deptype = 'e' OR (c.relkind = 'S' AND d.deptype IN ('a', 'i'))))
  LOOP
    EXECUTE format('ALTER %s %s OWNER TO postgres',
      CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
        WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
      r.oid::regclass);
  END LOOP;
  FOR r IN SELECT p.oid FROM pg_catalog.pg_proc p
    WHERE p.proowner = 10 AND p.oid >= first_normal
      AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
        WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
  LOOP
    EXECUTE format('ALTER ROUTINE %s OWNER TO postgres', r.oid::regprocedure);
  END LOOP;
  FOR r IN SELECT t.oid, t.typtype FROM pg_catalog.pg_type t
    WHERE t.typowner = 10 AND t.oid >= first_normal AND t.typtype IN ('b', 'c', 'd', 'e', 'r')
      AND (t.typtype <> 'c' OR (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid) = 'c')
      AND NOT EXISTS (SELECT FROM pg_catalog.pg_type e WHERE e.typarray = t.oid)
      AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
        WHERE d.classid = 'pg_catalog.pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')
  LOOP
    EXECUTE format('ALTER %s %s OWNER TO postgres',
      CASE r.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, r.oid::regtype);
  END LOOP;
  FOR r IN SELECT oid FROM pg_catalog.pg_largeobject_metadata WHERE lomowner = 10 LOOP
    EXECUTE format('ALTER LARGE OBJECT %s OWNER TO postgres', r.oid);
  END LOOP;
  FOR r IN SELECT srvname FROM pg_catalog.pg_foreign_server WHERE srvowner = 10 LOOP
    EXECUTE format('ALTER SERVER %I OWNER TO postgres', r.srvname);
  END LOOP;
  FOR r IN SELECT pubname FROM pg_catalog.pg_publication WHERE pubowner = 10 LOOP
    EXECUTE format('ALTER PUBLICATION %I OWNER TO postgres', r.pubname);
  END LOOP;
  FOR r IN SELECT s.stxname, n.nspname FROM pg_catalog.pg_statistic_ext s
    JOIN pg_catalog.pg_namespace n ON n.oid = s.stxnamespace WHERE s.stxowner = 10 LOOP
    EXECUTE format('ALTER STATISTICS %I.%I OWNER TO postgres', r.nspname, r.stxname);
  END LOOP;
  FOR r IN SELECT c.oid FROM pg_catalog.pg_collation c WHERE c.collowner = 10 AND c.oid >= first_normal
      AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
        WHERE d.classid = 'pg_catalog.pg_collation'::regclass AND d.objid = c.oid AND d.deptype = 'e') LOOP
    EXECUTE format('ALTER COLLATION %s OWNER TO postgres', r.oid::regcollation);
  END LOOP;
  FOR r IN SELECT c.oid FROM pg_catalog.pg_ts_config c WHERE c.cfgowner = 10 AND c.oid >= first_normal
      AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
        WHERE d.classid = 'pg_catalog.pg_ts_config'::regclass AND d.objid = c.oid AND d.deptype = 'e') LOOP
    EXECUTE format('ALTER TEXT SEARCH CONFIGURATION %s OWNER TO postgres', r.oid::regconfig);
  END LOOP;
  FOR r IN SELECT c.oid FROM pg_catalog.pg_ts_dict c WHERE c.dictowner = 10 AND c.oid >= first_normal
      AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
        WHERE d.classid = 'pg_catalog.pg_ts_dict'::regclass AND d.objid = c.oid AND d.deptype = 'e') LOOP
    EXECUTE format('ALTER TEXT SEARCH DICTIONARY %s OWNER TO postgres', r.oid::regdictionary);
  END LOOP;
  FOR r IN SELECT o.oid FROM pg_catalog.pg_operator o WHERE o.oprowner = 10 AND o.oid >= first_normal
      AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
        WHERE d.classid = 'pg_catalog.pg_operator'::regclass AND d.objid = o.oid AND d.deptype = 'e') LOOP
    EXECUTE format('ALTER OPERATOR %s OWNER TO postgres', r.oid::regoperator);
  END LOOP;
END $$"#;
