//! Who may do what. Deny by default: an action is allowed only where this table says so, and every
//! handler asks it before touching anything.

use ketaflow_store::Role;

/// Everything the API lets someone do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// List and read patients, eligibility, plans, protocols.
    ReadClinical,
    /// Register patients and record intake facts (measurements, medications, history, BP).
    WriteIntake,
    /// Acknowledge a relative contraindication with a reason.
    AcknowledgeContraindication,
    /// Compute and save a dose plan.
    CreatePlan,
    /// Approve a plan, overriding soft limits with reasons.
    ApprovePlan,
    /// Create, disable and reset users.
    ManageUsers,
    /// Read and verify the audit chain.
    ReadAudit,
    /// Run an infusion session: schedule, check in, start/pause/stop, record vitals, side effects
    /// and assessments, acknowledge and resolve alarms, issue a monitor's device token, discharge.
    RunSession,
    /// Physician decisions in a session: a rate above a soft limit, discharge before every
    /// criterion is met (each with a reason).
    OverrideSession,
    /// Read the controlled-substance ledger, its reports, and export it for an inspector.
    ReadLedger,
    /// Record controlled-substance use: draws for a session, administration, witnessed waste
    /// (and be a witness).
    WriteLedger,
    /// Receive vials, destroy stock (DEA Form 41), take counts and inventories, resolve count
    /// discrepancies: the registrant's records (21 CFR 1304.22(c), 21 U.S.C. 827(a)).
    ManageLedger,
    /// Register bedside monitors (their identifiers, models, serials, where they are kept).
    ManageDevices,
}

impl Action {
    /// Every action, for the role × action matrix tests.
    pub const ALL: [Action; 13] = [
        Action::ReadClinical,
        Action::WriteIntake,
        Action::AcknowledgeContraindication,
        Action::CreatePlan,
        Action::ApprovePlan,
        Action::ManageUsers,
        Action::ReadAudit,
        Action::RunSession,
        Action::OverrideSession,
        Action::ReadLedger,
        Action::WriteLedger,
        Action::ManageLedger,
        Action::ManageDevices,
    ];

    /// Words for error messages ("your role may not …").
    pub fn describe(self) -> &'static str {
        match self {
            Action::ReadClinical => "read clinical records",
            Action::WriteIntake => "record intake",
            Action::AcknowledgeContraindication => "acknowledge a contraindication",
            Action::CreatePlan => "create a dose plan",
            Action::ApprovePlan => "approve a dose plan",
            Action::ManageUsers => "manage users",
            Action::ReadAudit => "read the audit log",
            Action::RunSession => "run an infusion session",
            Action::OverrideSession => "override a session limit or discharge criterion",
            Action::ReadLedger => "read the controlled-substance ledger",
            Action::WriteLedger => "record controlled-substance use",
            Action::ManageLedger => "receive, destroy or count controlled-substance stock",
            Action::ManageDevices => "register bedside monitors",
        }
    }
}

/// Whether `role` may perform `action`.
pub fn allowed(role: Role, action: Action) -> bool {
    use Action::*;
    match role {
        // Administrators run the system; they read clinical records but do not change them.
        // They read the controlled-substance ledger to produce it for an inspector.
        // They register the clinic's monitors; nurses put them at chairs (running a session).
        Role::Administrator => matches!(
            action,
            ReadClinical | ManageUsers | ReadAudit | ReadLedger | ManageDevices
        ),
        // Physicians prescribe: everything clinical, including approvals and overrides.
        Role::Physician => matches!(
            action,
            ReadClinical
                | WriteIntake
                | AcknowledgeContraindication
                | CreatePlan
                | ApprovePlan
                | RunSession
                | OverrideSession
                | ReadLedger
                | WriteLedger
                | ManageLedger
        ),
        // Nurses record intake and prepare plans for a physician to approve.
        // Nurses also run sessions; overrides stay with physicians.
        // They draw, record administration and waste, and witness; receipts, destruction and
        // counts stay with the physician (the DEA registrant).
        Role::Nurse => matches!(
            action,
            ReadClinical | WriteIntake | CreatePlan | RunSession | ReadLedger | WriteLedger
        ),
        Role::Viewer => matches!(action, ReadClinical),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_is_exactly_as_designed() {
        // Columns: read, intake, acknowledge, plan, approve, users, audit, run session, override,
        // read ledger, write ledger, manage ledger, manage devices.
        let expected: [(Role, [bool; 13]); 4] = [
            (
                Role::Administrator,
                [
                    true, false, false, false, false, true, true, false, false, true, false, false, true,
                ],
            ),
            (
                Role::Physician,
                [
                    true, true, true, true, true, false, false, true, true, true, true, true, false,
                ],
            ),
            (
                Role::Nurse,
                [
                    true, true, false, true, false, false, false, true, false, true, true, false, false,
                ],
            ),
            (
                Role::Viewer,
                [
                    true, false, false, false, false, false, false, false, false, false, false, false, false,
                ],
            ),
        ];
        for (role, row) in expected {
            for (action, want) in Action::ALL.into_iter().zip(row) {
                assert_eq!(allowed(role, action), want, "{role:?} {action:?}");
            }
        }
    }
}

/// How a person is named wherever a record shows who did something (ledger, signatures, the
/// session record, the audit page): "Display Name (username)".
pub fn person_name(display_name: &str, username: &str) -> String {
    format!("{display_name} ({username})")
}

/// The signed-in person a use case acts for, as the front door authenticated them.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The user.
    pub user: ketaflow_store::User,
}

impl Caller {
    /// Refuses unless the user's role may do `action` and no password change is pending.
    pub fn require(&self, action: Action) -> Result<(), crate::AppError> {
        // A one-time password opens nothing but the password change itself.
        if self.user.must_change_password {
            return Err(crate::AppError::PasswordChangeRequired);
        }
        if allowed(self.user.role, action) {
            Ok(())
        } else {
            Err(crate::AppError::Forbidden {
                role: self.user.role.as_str(),
                action: action.describe(),
            })
        }
    }

    /// Whether the user's role may do `action` (no error: for choices such as showing a button).
    pub fn may(&self, action: Action) -> bool {
        !self.user.must_change_password && allowed(self.user.role, action)
    }

    /// The audit actor.
    pub fn actor(&self) -> ketaflow_store::Actor {
        ketaflow_store::Actor::user(self.user.id, self.user.role)
    }

    /// The name a record keeps beside the user id when this user signs something.
    pub fn signature(&self) -> String {
        person_name(&self.user.display_name, &self.user.username)
    }
}
