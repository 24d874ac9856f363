//! A reconcile run as data: where it is, what it counted, and the pure
//! rules by which it moves on.

use serde::{Deserialize, Serialize};

use crate::converge::Outcome;

/// Devices (or Things) per page; one checkpoint per page.
pub const PAGE_SIZE: u32 = 100;
/// Failures kept with their reasons; all are counted.
const MAX_FAILURES_LISTED: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    Done,
    Failed,
}

/// Where a run is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "walking", rename_all = "snake_case")]
pub enum Phase {
    Devices { page: u32 },
    Things { next_token: Option<String> },
    Finished,
}

impl Phase {
    /// Where the run goes after a page that listed `listed` items; for the
    /// Things phase, `next_token` is the listing's token of the next page.
    pub fn after_page(&self, listed: usize, next_token: Option<String>) -> Phase {
        match self {
            Phase::Devices { .. } if listed < PAGE_SIZE as usize => {
                Phase::Things { next_token: None }
            }
            Phase::Devices { page } => Phase::Devices { page: page + 1 },
            Phase::Things { .. } => match next_token {
                Some(token) => Phase::Things {
                    next_token: Some(token),
                },
                None => Phase::Finished,
            },
            Phase::Finished => Phase::Finished,
        }
    }
}

/// Whether an invocation stops after a page (and continues in the next):
/// past its deadline, with work left.
pub fn checkpoint_here(phase: &Phase, past_deadline: bool) -> bool {
    past_deadline && *phase != Phase::Finished
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Mender devices looked at.
    pub seen: u64,
    pub provisioned: u64,
    pub repaired: u64,
    pub disabled: u64,
    pub removed: u64,
    pub in_sync: u64,
    /// Things of a device's name that the bridge does not manage.
    pub conflicts: u64,
    /// Devices a webhook was converging at the time; it converged them
    /// again afterwards.
    #[serde(default)]
    pub handed_over: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub device_id: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileRun {
    pub run_id: String,
    pub tenant_id: String,
    pub integration_id: String,
    pub state: RunState,
    pub phase: Phase,
    pub counts: Counts,
    pub failures: Vec<Failure>,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// How many invocations the run has taken so far.
    pub invocations: u32,
}

impl ReconcileRun {
    pub fn new(run_id: String, tenant_id: &str, integration_id: &str, now: String) -> Self {
        ReconcileRun {
            run_id,
            tenant_id: tenant_id.to_owned(),
            integration_id: integration_id.to_owned(),
            state: RunState::Running,
            phase: Phase::Devices { page: 1 },
            counts: Counts::default(),
            failures: Vec::new(),
            started_at: now,
            ended_at: None,
            invocations: 0,
        }
    }

    pub fn tally(&mut self, device_id: &str, result: Result<Outcome, String>) {
        let counts = &mut self.counts;
        match result {
            Ok(Outcome::Provisioned) => counts.provisioned += 1,
            Ok(Outcome::Repaired) => counts.repaired += 1,
            Ok(Outcome::Disabled) => counts.disabled += 1,
            Ok(Outcome::Removed) => counts.removed += 1,
            Ok(Outcome::Conflict) => counts.conflicts += 1,
            Ok(Outcome::InSync | Outcome::Nothing) => counts.in_sync += 1,
            Ok(Outcome::HandedOver) => counts.handed_over += 1,
            Err(reason) => {
                counts.failed += 1;
                if self.failures.len() < MAX_FAILURES_LISTED {
                    self.failures.push(Failure {
                        device_id: device_id.to_owned(),
                        reason,
                    });
                }
            }
        }
    }

    /// Ends the run in `state` at `now`.
    pub fn end(&mut self, state: RunState, now: String) {
        self.state = state;
        self.ended_at = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_walks_devices_then_things_then_ends() {
        let full = PAGE_SIZE as usize;
        let token = || Some("t".to_owned());
        for (phase, listed, next_token, expected) in [
            (
                Phase::Devices { page: 1 },
                full,
                None,
                Phase::Devices { page: 2 },
            ),
            (
                Phase::Devices { page: 7 },
                full - 1,
                None,
                Phase::Things { next_token: None },
            ),
            (
                Phase::Devices { page: 2 },
                0,
                None,
                Phase::Things { next_token: None },
            ),
            (
                Phase::Things { next_token: None },
                3,
                token(),
                Phase::Things {
                    next_token: token(),
                },
            ),
            (
                Phase::Things {
                    next_token: token(),
                },
                0,
                None,
                Phase::Finished,
            ),
            (Phase::Finished, 0, None, Phase::Finished),
        ] {
            assert_eq!(
                phase.after_page(listed, next_token.clone()),
                expected,
                "{phase:?}"
            );
        }
    }

    #[test]
    fn an_invocation_stops_only_past_its_deadline_with_work_left() {
        assert!(checkpoint_here(&Phase::Devices { page: 3 }, true));
        assert!(!checkpoint_here(&Phase::Devices { page: 3 }, false));
        assert!(!checkpoint_here(&Phase::Finished, true));
    }

    #[test]
    fn every_outcome_is_counted_and_failures_are_listed_up_to_a_limit() {
        let mut run = ReconcileRun::new("r".into(), "t", "i", "now".into());
        for outcome in [
            Outcome::Provisioned,
            Outcome::Repaired,
            Outcome::Disabled,
            Outcome::Removed,
            Outcome::Conflict,
            Outcome::InSync,
            Outcome::Nothing,
            Outcome::HandedOver,
        ] {
            run.tally("d", Ok(outcome));
        }
        for i in 0..150 {
            run.tally(&format!("d{i}"), Err("no".into()));
        }
        let counts = &run.counts;
        assert_eq!(
            (
                counts.provisioned,
                counts.repaired,
                counts.disabled,
                counts.removed,
                counts.conflicts,
                counts.in_sync,
                counts.handed_over,
                counts.failed
            ),
            (1, 1, 1, 1, 1, 2, 1, 150)
        );
        assert_eq!(run.failures.len(), MAX_FAILURES_LISTED);
        assert_eq!(run.failures[0].device_id, "d0");
    }
}
