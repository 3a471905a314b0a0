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
}

impl Action {
    /// Every action, for the role × action matrix tests.
    pub const ALL: [Action; 7] = [
        Action::ReadClinical,
        Action::WriteIntake,
        Action::AcknowledgeContraindication,
        Action::CreatePlan,
        Action::ApprovePlan,
        Action::ManageUsers,
        Action::ReadAudit,
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
        }
    }
}

/// Whether `role` may perform `action`.
pub fn allowed(role: Role, action: Action) -> bool {
    use Action::*;
    match role {
        // Administrators run the system; they read clinical records but do not change them.
        Role::Administrator => matches!(action, ReadClinical | ManageUsers | ReadAudit),
        // Physicians prescribe: everything clinical, including approvals and overrides.
        Role::Physician => matches!(
            action,
            ReadClinical | WriteIntake | AcknowledgeContraindication | CreatePlan | ApprovePlan
        ),
        // Nurses record intake and prepare plans for a physician to approve.
        Role::Nurse => matches!(action, ReadClinical | WriteIntake | CreatePlan),
        Role::Viewer => matches!(action, ReadClinical),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_is_exactly_as_designed() {
        let expected: [(Role, [bool; 7]); 4] = [
            (
                Role::Administrator,
                [true, false, false, false, false, true, true],
            ),
            (Role::Physician, [true, true, true, true, true, false, false]),
            (Role::Nurse, [true, true, false, true, false, false, false]),
            (Role::Viewer, [true, false, false, false, false, false, false]),
        ];
        for (role, row) in expected {
            for (action, want) in Action::ALL.into_iter().zip(row) {
                assert_eq!(allowed(role, action), want, "{role:?} {action:?}");
            }
        }
    }
}
