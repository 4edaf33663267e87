//! The states and kinds of Toygres resources, and the rules for moving between states.

use serde::{Deserialize, Serialize};

/// Declares a string-backed enum with its wire names and a parser.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire (and database) name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            /// Parses a wire name.
            pub fn parse(raw: &str) -> Option<Self> {
                match raw { $($wire => Some($name::$variant),)+ _ => None }
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(raw: String) -> Result<Self, Self::Error> {
                Self::parse(&raw).ok_or_else(|| format!("unknown {} '{raw}'", stringify!($name)))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(
    /// Lifecycle of an instance: `creating -> running -> deleting -> deleted`, and `failed`;
    /// day-2 operations add `running -> stopping -> stopped -> starting -> running` and
    /// `running -> updating -> running`.
    InstanceState {
        /// A create operation is deploying it.
        Creating => "creating",
        /// It accepted a connection with its own credentials.
        Running => "running",
        /// A stop operation is shutting its server down.
        Stopping => "stopping",
        /// Its server is down, its data kept; not health-checked.
        Stopped => "stopped",
        /// A start operation is bringing its server back.
        Starting => "starting",
        /// A restart, update or password reset is changing it.
        Updating => "updating",
        /// A delete operation is tearing it down.
        Deleting => "deleting",
        /// Gone; the row stays for audit.
        Deleted => "deleted",
        /// An operation failed; the error is on the instance.
        Failed => "failed",
    }
);

impl InstanceState {
    /// The states an instance may be in for a transition to `self` to apply.
    ///
    /// A transition from any other state is a no-op, so a replayed or late step can never move
    /// an instance backwards (for example `deleted -> running`).
    pub fn allowed_from(self) -> &'static [InstanceState] {
        use InstanceState::*;
        match self {
            Creating => &[],
            // From stopping or updating when a failed stop or update left the server up.
            Running => &[Creating, Starting, Updating, Stopping],
            Stopping => &[Running],
            // From starting or updating when a failed start or update left the server down.
            Stopped => &[Stopping, Starting, Updating],
            Starting => &[Stopped, Failed],
            Updating => &[Running],
            Deleting => &[Creating, Running, Stopped, Failed],
            Deleted => &[Deleting],
            // From running only when its backend resources vanished (`backend_lost`).
            Failed => &[Creating, Running, Stopping, Starting, Updating, Deleting],
        }
    }

    /// Whether an operation is moving the instance between two states (its server may be up
    /// or down): where a failed operation leaves it depends on what the backend shows.
    pub fn is_transitional(self) -> bool {
        use InstanceState::*;
        matches!(self, Creating | Stopping | Starting | Updating | Deleting)
    }

    /// Whether moving from `from` to `self` is a valid transition.
    pub fn can_follow(self, from: InstanceState) -> bool {
        self.allowed_from().contains(&from)
    }
}

wire_enum!(
    /// What an operation does.
    OperationKind {
        /// Create an instance.
        Create => "create",
        /// Delete an instance.
        Delete => "delete",
        /// Stop an instance's server, keeping its data.
        Stop => "stop",
        /// Start a stopped instance's server.
        Start => "start",
        /// Restart an instance's server.
        Restart => "restart",
        /// Change an instance's storage, parameters or deletion protection.
        Update => "update",
        /// Give an instance's owner a new password.
        ResetPassword => "reset_password",
        /// Take a backup of an instance.
        Backup => "backup",
        /// Restore a backup into a scratch instance and check it.
        VerifyBackup => "verify_backup",
    }
);

impl OperationKind {
    /// The states an instance must be in for an operation of this kind to claim it (an update
    /// narrows this by what it changes; a delete has rules of its own).
    pub fn claimable_from(self) -> &'static [InstanceState] {
        use InstanceState::*;
        match self {
            OperationKind::Create => &[],
            OperationKind::Delete => &[Creating, Running, Stopped, Failed],
            OperationKind::Stop => &[Running],
            OperationKind::Start => &[Stopped, Failed],
            OperationKind::Restart | OperationKind::ResetPassword => &[Running],
            OperationKind::Update => &[Running, Stopped, Failed],
            OperationKind::Backup => &[Running],
            // A verify works on a copy and holds no instance.
            OperationKind::VerifyBackup => &[],
        }
    }

    /// Whether an operation of this kind holds its instance while it runs (one at a time).
    pub fn holds_instance(self) -> bool {
        self != OperationKind::VerifyBackup
    }
}

wire_enum!(
    /// Where an operation is in its life.
    OperationStatus {
        /// Accepted; its workflow has not run a step yet.
        Pending => "pending",
        /// Its workflow is running.
        Running => "running",
        /// Finished successfully.
        Succeeded => "succeeded",
        /// Finished with an error.
        Failed => "failed",
        /// Stopped by a later request (a delete of a creating instance).
        Canceled => "canceled",
    }
);

impl OperationStatus {
    /// Whether the operation has finished and will not change again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            OperationStatus::Succeeded | OperationStatus::Failed | OperationStatus::Canceled
        )
    }
}

wire_enum!(
    /// A pgBackRest backup type.
    BackupType {
        /// Everything.
        Full => "full",
        /// What changed since the last full backup.
        Diff => "diff",
        /// What changed since the last backup of any type.
        Incr => "incr",
    }
);

wire_enum!(
    /// Where a backup is in its life.
    BackupStatus {
        /// Accepted or being taken.
        Running => "running",
        /// In the repository and restorable.
        Succeeded => "succeeded",
        /// It did not finish; the error says why.
        Failed => "failed",
    }
);

wire_enum!(
    /// Whether an instance's WAL archiving works.
    ArchiveStatus {
        /// The last archive attempt succeeded.
        Ok => "ok",
        /// The last archive attempt failed.
        Failing => "failing",
        /// The instance has no backups (the backend runs none).
        None => "none",
    }
);

wire_enum!(
    /// How an instance is reachable.
    Expose {
        /// Only from inside the backend's network.
        Internal => "internal",
        /// From outside (a load balancer on Kubernetes).
        Public => "public",
    }
);

wire_enum!(
    /// Health of a running instance, as its monitor last saw it.
    HealthStatus {
        /// The last check succeeded.
        Healthy => "healthy",
        /// At least the configured number of checks in a row failed.
        Unhealthy => "unhealthy",
        /// Not checked yet, or fewer failures than the threshold after an unknown start.
        Unknown => "unknown",
    }
);

impl HealthStatus {
    /// The status after a check, given the status before it, the failures in a row including
    /// this check (0 when it succeeded), and the failures needed to turn unhealthy.
    pub fn after_check(self, consecutive_failures: u32, unhealthy_after: u32) -> HealthStatus {
        if consecutive_failures == 0 {
            HealthStatus::Healthy
        } else if consecutive_failures >= unhealthy_after.max(1) {
            HealthStatus::Unhealthy
        } else {
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::InstanceState::*;
    use super::*;

    #[test]
    fn forward_transitions_are_allowed() {
        assert!(Running.can_follow(Creating));
        assert!(Deleting.can_follow(Running));
        assert!(Deleting.can_follow(Creating));
        assert!(Deleting.can_follow(Failed));
        assert!(Deleted.can_follow(Deleting));
        assert!(Failed.can_follow(Creating));
        assert!(Failed.can_follow(Deleting));
        assert!(Failed.can_follow(Running));
    }

    #[test]
    fn backward_and_terminal_transitions_are_refused() {
        for state in InstanceState::ALL {
            assert!(
                !state.can_follow(Deleted),
                "{state} must not follow deleted"
            );
            assert!(
                !Creating.can_follow(*state),
                "nothing moves back to creating"
            );
        }
        assert!(!Running.can_follow(Deleting));
        assert!(!Running.can_follow(Failed));
        assert!(!Deleted.can_follow(Running));
    }

    #[test]
    fn day_two_transitions_go_through_their_own_states() {
        assert!(Stopping.can_follow(Running));
        assert!(Stopped.can_follow(Stopping));
        assert!(Starting.can_follow(Stopped));
        assert!(Running.can_follow(Starting));
        assert!(Updating.can_follow(Running));
        assert!(Running.can_follow(Updating));
        assert!(Deleting.can_follow(Stopped));
        assert!(
            !Starting.can_follow(Running),
            "a running instance is not started"
        );
        assert!(
            !Stopping.can_follow(Stopped),
            "a stopped instance is not stopped"
        );
        assert!(!Updating.can_follow(Stopped));
        assert!(!Deleting.can_follow(Stopping), "one operation at a time");
        assert!(
            !Running.can_follow(Stopped),
            "only a start brings a stopped instance back"
        );
    }

    #[test]
    fn operations_claim_instances_only_in_states_they_apply_to() {
        assert_eq!(OperationKind::Stop.claimable_from(), &[Running]);
        assert!(OperationKind::Start.claimable_from().contains(&Stopped));
        assert!(!OperationKind::Start.claimable_from().contains(&Running));
        for kind in OperationKind::ALL {
            assert!(
                !kind.claimable_from().contains(&Deleted),
                "{kind} never claims a deleted instance"
            );
        }
    }

    #[test]
    fn wire_names_round_trip() {
        for state in InstanceState::ALL {
            assert_eq!(InstanceState::parse(state.as_str()), Some(*state));
        }
        for status in OperationStatus::ALL {
            assert_eq!(OperationStatus::parse(status.as_str()), Some(*status));
        }
        assert_eq!(InstanceState::parse("Running"), None);
    }

    #[test]
    fn health_turns_unhealthy_only_after_n_failures_and_healthy_after_one_success() {
        use HealthStatus::*;
        assert_eq!(Unknown.after_check(0, 3), Healthy);
        assert_eq!(Healthy.after_check(1, 3), Healthy);
        assert_eq!(Healthy.after_check(2, 3), Healthy);
        assert_eq!(Healthy.after_check(3, 3), Unhealthy);
        assert_eq!(Unhealthy.after_check(4, 3), Unhealthy);
        assert_eq!(Unhealthy.after_check(0, 3), Healthy);
        assert_eq!(Unknown.after_check(1, 3), Unknown);
        assert_eq!(
            Healthy.after_check(1, 0),
            Unhealthy,
            "a threshold of 0 acts as 1"
        );
    }

    #[test]
    fn only_finished_statuses_are_terminal() {
        assert!(!OperationStatus::Pending.is_terminal());
        assert!(!OperationStatus::Running.is_terminal());
        assert!(OperationStatus::Canceled.is_terminal());
    }
}
