//! The changes of an existing instance the console makes (stop, start, restart, parameters,
//! deletion protection, a new password, backups and their verification) and the backups it
//! lists: each one call of [`crate::plane::ControlPlane`], as the REST handlers make it, with
//! its errors mapped as they map them.

use super::{Service, no_instance};
use crate::http::api::error::ApiError;
use crate::http::api::types::{Backup, Operation};
use crate::plane::{Accepted, ServiceError, UpdateRequest};
use std::collections::BTreeMap;
use toygres_activities::validation::InstanceName;

/// One of the changes that take no input: stop, start, restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Stop a running instance.
    Stop,
    /// Start a stopped instance.
    Start,
    /// Restart a running instance.
    Restart,
}

impl Action {
    /// The action of a path segment (`stop`, `start`, `restart`).
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "stop" => Some(Action::Stop),
            "start" => Some(Action::Start),
            "restart" => Some(Action::Restart),
            _ => None,
        }
    }

    /// The path segment and the word on its button.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Stop => "stop",
            Action::Start => "start",
            Action::Restart => "restart",
        }
    }
}

/// A new password, accepted: the operation that sets it, and the password to show once.
pub struct PasswordReset {
    /// The reset's operation.
    pub operation: Operation,
    /// The owner's user name.
    pub user: String,
    /// The new password.
    pub password: String,
}

/// A taken or verified backup's operation.
pub struct BackupAccepted {
    /// The backup.
    pub backup: Backup,
    /// Its operation.
    pub operation: Operation,
}

/// A 404 that names the instance, any other error as the API maps it.
fn named(name: &InstanceName) -> impl Fn(ServiceError) -> ApiError + '_ {
    move |error| match error {
        ServiceError::NotFound => no_instance(name),
        other => other.into(),
    }
}

fn operation_of(accepted: &Accepted) -> Operation {
    Operation::from(&accepted.operation)
}

impl Service {
    /// Whether this server backs instances up (backups on, and the backend runs them).
    pub fn archives(&self) -> bool {
        self.plane.archives()
    }

    /// Stops, starts or restarts an instance, as `POST /instances/{name}/{action}` does.
    pub async fn act(&self, name: &InstanceName, action: Action) -> Result<Operation, ApiError> {
        let accepted = match action {
            Action::Stop => self.plane.stop(name, None).await,
            Action::Start => self.plane.start(name, None).await,
            Action::Restart => self.plane.restart(name, None).await,
        }
        .map_err(named(name))?;
        Ok(operation_of(&accepted))
    }

    /// Sets parameters (`Some`) or returns them to the server's default (`None`), as `PATCH
    /// /instances/{name}` with `parameters` does.
    pub async fn set_parameters(
        &self,
        name: &InstanceName,
        parameters: BTreeMap<String, Option<String>>,
    ) -> Result<Operation, ApiError> {
        let request = UpdateRequest {
            parameters: Some(parameters),
            ..UpdateRequest::default()
        };
        let accepted = self
            .plane
            .update(name, request)
            .await
            .map_err(named(name))?;
        Ok(operation_of(&accepted))
    }

    /// Turns deletion protection on or off, as `PATCH /instances/{name}` with
    /// `deletion_protection` does.
    pub async fn protect(&self, name: &InstanceName, on: bool) -> Result<Operation, ApiError> {
        let request = UpdateRequest {
            deletion_protection: Some(on),
            ..UpdateRequest::default()
        };
        let accepted = self
            .plane
            .update(name, request)
            .await
            .map_err(named(name))?;
        Ok(operation_of(&accepted))
    }

    /// Gives the owner a new password (`password`, or a generated one), as `POST
    /// /instances/{name}/reset-password` does; the password comes back this once.
    pub async fn reset_password(
        &self,
        name: &InstanceName,
        password: Option<String>,
    ) -> Result<PasswordReset, ApiError> {
        let (accepted, password) = self
            .plane
            .reset_password(name, password, None)
            .await
            .map_err(named(name))?;
        Ok(PasswordReset {
            operation: operation_of(&accepted),
            user: accepted.instance.username.clone(),
            password,
        })
    }

    /// Takes a full backup now, as `POST /instances/{name}/backups` does.
    pub async fn backup(&self, name: &InstanceName) -> Result<BackupAccepted, ApiError> {
        let (accepted, backup) = self
            .plane
            .backup(name, None, None)
            .await
            .map_err(named(name))?;
        Ok(BackupAccepted {
            backup: Backup::from(&backup),
            operation: operation_of(&accepted),
        })
    }

    /// Verifies backup `backup_id`, as `POST /instances/{name}/backups/{id}/verify` does.
    pub async fn verify_backup(
        &self,
        name: &InstanceName,
        backup_id: &str,
    ) -> Result<BackupAccepted, ApiError> {
        let (accepted, backup) = self
            .plane
            .verify_backup(name, backup_id, None)
            .await
            .map_err(|error| match error {
                ServiceError::NotFound => {
                    ApiError::NotFound(format!("{name} has no backup {backup_id}"))
                }
                other => other.into(),
            })?;
        Ok(BackupAccepted {
            backup: Backup::from(&backup),
            operation: operation_of(&accepted),
        })
    }

    /// The newest `limit` backups of an instance (live, or the latest deleted one), newest
    /// first, and whether there are more.
    pub async fn backups(
        &self,
        name: &InstanceName,
        limit: i64,
    ) -> Result<(Vec<Backup>, bool), ApiError> {
        let page = self
            .plane
            .backups_of(name, None, limit)
            .await
            .map_err(named(name))?;
        Ok((page.items.iter().map(Backup::from).collect(), page.has_more))
    }
}
