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
    /// Lifecycle of an instance: `creating -> running -> deleting -> deleted`, and `failed`.
    InstanceState {
        /// A create operation is deploying it.
        Creating => "creating",
        /// It accepted a connection with its own credentials.
        Running => "running",
        /// A delete operation is tearing it down.
        Deleting => "deleting",
        /// Gone; the row stays for audit.
        Deleted => "deleted",
        /// A create or delete failed; the error is on the instance.
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
            Running => &[Creating],
            Deleting => &[Creating, Running, Failed],
            Deleted => &[Deleting],
            // From running only when its backend resources vanished (`backend_lost`).
            Failed => &[Creating, Running, Deleting],
        }
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
    }
);

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
