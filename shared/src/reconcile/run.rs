//! A reconcile run as data: where it is, what it counted, and the pure
//! rules by which it moves on.

use serde::{Deserialize, Serialize};

use crate::converge::Outcome;
pub use crate::settings::SafetyLimit;

/// Failures (and refusals) kept with their reasons; all are counted.
const MAX_FAILURES_LISTED: usize = 100;
/// Device ids a rotation run may name; more are a Mender group's job.
pub const MAX_DEVICE_IDS: usize = 1000;

/// What a run does to each device it walks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// Converges every device to what Mender says (the schedule's runs).
    #[default]
    Sync,
    /// Rotates the certificate of every device in its [`Scope`], make before
    /// break, as `POST /devices/{device_id}/rotation` does for one.
    Rotation,
}

impl RunKind {
    /// Its name, as records show it.
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Sync => "sync",
            RunKind::Rotation => "rotation",
        }
    }
}

/// The devices a rotation run rotates, when not every accepted one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The devices of a Mender (inventory) group.
    Group(String),
    /// The devices named, in that order.
    DeviceIds(Vec<String>),
}

/// What a run is asked to do when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunRequest {
    /// `confirmed` when the admin confirmed a held run's changes.
    Sync { confirmed: bool },
    /// Every accepted device when there is no scope.
    Rotation(Option<Scope>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    Done,
    Failed,
    /// The run would disable or remove more than the safety limit allows:
    /// it changed none of that and waits for the admin (see [`after_walk`]).
    Held,
}

/// A run walks the organization once to survey it (converging everything
/// but disabling and removing, which it only counts), and a second time to
/// apply what the survey deferred, when that is within the safety limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pass {
    #[default]
    Survey,
    Apply,
}

/// What a run does when a walk ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterWalk {
    Done,
    /// Look in full at devices whose listings agreed with their records.
    DeepCheck,
    /// Walk again, carrying out what the survey deferred.
    Apply,
    /// Change nothing more; wait for the admin.
    Hold,
}

/// Pure: the end of a walk. A sync run's survey ends with the deep check
/// (before deciding, so what the deep check defers is applied or held like
/// the rest). Nothing deferred ends the run; deferred changes within the
/// limit (or confirmed by the admin) are applied; more are held.
pub fn after_walk(run: &ReconcileRun, limit: SafetyLimit) -> AfterWalk {
    if run.kind == RunKind::Rotation {
        return AfterWalk::Done;
    }
    match run.pass {
        Pass::Survey if !run.deep_check_done => AfterWalk::DeepCheck,
        Pass::Apply => AfterWalk::Done,
        Pass::Survey if run.counts.deferred == 0 => AfterWalk::Done,
        Pass::Survey if !run.confirmed && limit.exceeded_by(run.counts.deferred, run.managed) => {
            AfterWalk::Hold
        }
        Pass::Survey => AfterWalk::Apply,
    }
}

/// Where a run is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "walking", rename_all = "snake_case")]
pub enum Phase {
    Devices {
        page: u32,
    },
    Things {
        next_token: Option<String>,
    },
    /// The deep check walks Mender's pages from `first` (where the last
    /// run's stopped), round to the end and from the start again.
    DeepCheck {
        page: u32,
        first: u32,
        wrapped: bool,
    },
    Finished,
}

impl Phase {
    /// Where a run of `kind` goes after a page that listed `listed` items
    /// (Mender's pages hold `page_size`); for the Things phase,
    /// `next_token` is the listing's token of the next page. Only a sync
    /// run walks the Things (to remove those whose device Mender no longer
    /// knows). The deep check stops once it has looked at as many devices
    /// as a run may (`enough`), or has come round to where it began.
    pub fn after_page(
        &self,
        kind: RunKind,
        page_size: u32,
        listed: usize,
        next_token: Option<String>,
        enough: bool,
    ) -> Phase {
        let last_page = listed < page_size as usize;
        match self {
            Phase::Devices { .. } if last_page => match kind {
                RunKind::Sync => Phase::Things { next_token: None },
                RunKind::Rotation => Phase::Finished,
            },
            Phase::Devices { page } => Phase::Devices { page: page + 1 },
            Phase::Things { .. } => match next_token {
                Some(token) => Phase::Things {
                    next_token: Some(token),
                },
                None => Phase::Finished,
            },
            Phase::DeepCheck { .. } if enough => Phase::Finished,
            Phase::DeepCheck { wrapped: true, .. } if last_page => Phase::Finished,
            Phase::DeepCheck { first, .. } if last_page => match *first {
                1 => Phase::Finished,
                first => Phase::DeepCheck {
                    page: 1,
                    first,
                    wrapped: true,
                },
            },
            Phase::DeepCheck {
                page,
                first,
                wrapped,
            } if *wrapped && page + 1 >= *first => Phase::Finished,
            Phase::DeepCheck {
                page,
                first,
                wrapped,
            } => Phase::DeepCheck {
                page: page + 1,
                first: *first,
                wrapped: *wrapped,
            },
            Phase::Finished => Phase::Finished,
        }
    }

    /// Pure: where the next run's deep check begins, after this run's
    /// stopped on `page` (`listed` devices); the first page once the walk
    /// reached the end of the listing.
    pub fn deep_check_resumes(page: u32, page_size: u32, listed: usize) -> u32 {
        if listed < page_size as usize {
            1
        } else {
            page + 1
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
    /// Devices whose certificates the survey would disable or whose Thing
    /// it would remove (applied in the second pass, or held).
    #[serde(default)]
    pub deferred: u64,
    /// A rotation run: devices given a new certificate (the one they hold
    /// stays ACTIVE until they report the new one).
    #[serde(default)]
    pub rotated: u64,
    /// A rotation run: devices it would not rotate (not accepted, a
    /// rotation already waiting, no certificate reported), listed in
    /// `refusals` with the reason.
    #[serde(default)]
    pub refused: u64,
    pub failed: u64,
    /// A sync run: devices whose listings agreed with their records that
    /// the deep check looked at in full (counted in their outcome too).
    #[serde(default)]
    pub deep_checked: u64,
}

/// Where a sync run left the organization's devices, by state: what an
/// admin reads as "how many devices are where" (the console's counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Census {
    /// Devices with an ACTIVE certificate, attached and delivered.
    pub provisioned: u64,
    /// Devices whose Thing is kept with its certificates INACTIVE.
    pub disabled: u64,
    /// Devices whose name a Thing the bridge does not manage has.
    pub conflict: u64,
    /// Devices the run could not converge.
    pub failed: u64,
}

impl Census {
    /// Pure: the state a walked device is left in, from the run's result
    /// and whether Mender listed it as accepted; `None` for a device with
    /// nothing in AWS (removed, never provisioned) or whose state another
    /// invocation decides (handed over, deferred to the second pass).
    pub fn state_of(result: &Result<Outcome, NotDone>, accepted: bool) -> Option<DeviceState> {
        match result {
            Ok(Outcome::Provisioned | Outcome::Repaired | Outcome::Rotated) => {
                Some(DeviceState::Provisioned)
            }
            Ok(Outcome::InSync) if accepted => Some(DeviceState::Provisioned),
            Ok(Outcome::InSync | Outcome::Disabled) => Some(DeviceState::Disabled),
            Ok(Outcome::Conflict) => Some(DeviceState::Conflict),
            Err(NotDone::Failed(_)) => Some(DeviceState::Failed),
            Ok(Outcome::Removed | Outcome::Nothing | Outcome::HandedOver | Outcome::Deferred)
            | Err(NotDone::Refused(_)) => None,
        }
    }

    fn count(&mut self, state: DeviceState) {
        *self.of(state) += 1;
    }

    fn uncount(&mut self, state: DeviceState) {
        let count = self.of(state);
        *count = count.saturating_sub(1);
    }

    fn of(&mut self, state: DeviceState) -> &mut u64 {
        match state {
            DeviceState::Provisioned => &mut self.provisioned,
            DeviceState::Disabled => &mut self.disabled,
            DeviceState::Conflict => &mut self.conflict,
            DeviceState::Failed => &mut self.failed,
        }
    }
}

/// A device's state in a [`Census`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceState {
    Provisioned,
    Disabled,
    Conflict,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub device_id: String,
    pub reason: String,
}

/// Why a device was not converged: a rotation it would not start (nothing
/// was changed), or a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotDone {
    Refused(String),
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileRun {
    pub run_id: String,
    pub tenant_id: String,
    pub integration_id: String,
    #[serde(default)]
    pub kind: RunKind,
    /// A rotation run's devices, when not every accepted one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    pub state: RunState,
    pub phase: Phase,
    pub counts: Counts,
    /// How many devices the run expects to walk (Mender's count when it
    /// started, or the ids it was given), for progress; `None` when not
    /// known (a group's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// A sync run: its devices by the state it left them in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<Census>,
    pub failures: Vec<Failure>,
    /// A rotation run's refused devices, with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refusals: Vec<Failure>,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// How many invocations the run has taken so far.
    pub invocations: u32,
    #[serde(default)]
    pub pass: Pass,
    /// The integration's Things, as the survey listed them.
    #[serde(default)]
    pub managed: u64,
    /// Started by the admin's confirmation of a held run: no safety limit.
    #[serde(default)]
    pub confirmed: bool,
    /// Why the run is held, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
    /// A sync run: the survey's deep check is behind it.
    #[serde(default)]
    pub deep_check_done: bool,
}

impl ReconcileRun {
    pub fn new(
        run_id: String,
        tenant_id: &str,
        integration_id: &str,
        request: RunRequest,
        now: String,
    ) -> Self {
        let (kind, scope, confirmed) = match request {
            RunRequest::Sync { confirmed } => (RunKind::Sync, None, confirmed),
            RunRequest::Rotation(scope) => (RunKind::Rotation, scope, false),
        };
        let total = match &scope {
            Some(Scope::DeviceIds(ids)) => Some(ids.len() as u64),
            _ => None,
        };
        ReconcileRun {
            run_id,
            tenant_id: tenant_id.to_owned(),
            integration_id: integration_id.to_owned(),
            kind,
            scope,
            state: RunState::Running,
            phase: Phase::Devices { page: 1 },
            counts: Counts::default(),
            total,
            devices: (kind == RunKind::Sync).then(Census::default),
            failures: Vec::new(),
            refusals: Vec::new(),
            started_at: now,
            ended_at: None,
            invocations: 0,
            pass: Pass::Survey,
            managed: 0,
            confirmed,
            held: None,
            deep_check_done: kind != RunKind::Sync,
        }
    }

    /// Counts a walked device; `accepted` is whether Mender listed it so.
    pub fn tally(&mut self, device_id: &str, accepted: bool, result: Result<Outcome, NotDone>) {
        let counts = &mut self.counts;
        // The second pass counts only what it changed: the survey counted the rest.
        let counted_before = matches!(
            result,
            Ok(Outcome::InSync
                | Outcome::Nothing
                | Outcome::Conflict
                | Outcome::HandedOver
                | Outcome::Deferred)
        );
        if self.pass == Pass::Apply && counted_before {
            return;
        }
        if let (Some(census), Some(state)) =
            (&mut self.devices, Census::state_of(&result, accepted))
        {
            census.count(state);
        }
        match result {
            Ok(Outcome::Provisioned) => counts.provisioned += 1,
            Ok(Outcome::Repaired) => counts.repaired += 1,
            Ok(Outcome::Disabled) => counts.disabled += 1,
            Ok(Outcome::Removed) => counts.removed += 1,
            Ok(Outcome::Conflict) => counts.conflicts += 1,
            Ok(Outcome::InSync | Outcome::Nothing) => counts.in_sync += 1,
            Ok(Outcome::HandedOver) => counts.handed_over += 1,
            Ok(Outcome::Deferred) => counts.deferred += 1,
            Ok(Outcome::Rotated) => counts.rotated += 1,
            Err(NotDone::Refused(reason)) => {
                counts.refused += 1;
                list(&mut self.refusals, device_id, reason);
            }
            Err(NotDone::Failed(reason)) => {
                counts.failed += 1;
                list(&mut self.failures, device_id, reason);
            }
        }
    }

    /// Counts the deep check of a device the walk counted as `before`
    /// (unchanged, going by its record): a different result replaces it.
    pub fn recount(
        &mut self,
        device_id: &str,
        accepted: bool,
        before: Outcome,
        result: Result<Outcome, NotDone>,
    ) {
        self.counts.deep_checked += 1;
        if result == Ok(before) {
            return;
        }
        self.counts.in_sync = self.counts.in_sync.saturating_sub(1);
        if let (Some(census), Some(state)) =
            (&mut self.devices, Census::state_of(&Ok(before), accepted))
        {
            census.uncount(state);
        }
        self.tally(device_id, accepted, result);
    }

    /// Ends the run in `state` at `now`.
    pub fn end(&mut self, state: RunState, now: String) {
        self.state = state;
        self.ended_at = Some(now);
    }
}

/// Keeps a device and its reason, up to [`MAX_FAILURES_LISTED`].
fn list(listed: &mut Vec<Failure>, device_id: &str, reason: String) {
    if listed.len() < MAX_FAILURES_LISTED {
        listed.push(Failure {
            device_id: device_id.to_owned(),
            reason,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: u32 = 100;

    #[test]
    fn a_sync_run_walks_devices_then_things_a_rotation_run_devices_only() {
        let full = PAGE as usize;
        let token = || Some("t".to_owned());
        let things = || Phase::Things { next_token: None };
        use RunKind::{Rotation, Sync};
        for (kind, phase, listed, next_token, expected) in [
            (
                Sync,
                Phase::Devices { page: 1 },
                full,
                None,
                Phase::Devices { page: 2 },
            ),
            (
                Rotation,
                Phase::Devices { page: 1 },
                full,
                None,
                Phase::Devices { page: 2 },
            ),
            (Sync, Phase::Devices { page: 7 }, full - 1, None, things()),
            (
                Rotation,
                Phase::Devices { page: 7 },
                full - 1,
                None,
                Phase::Finished,
            ),
            (Sync, Phase::Devices { page: 2 }, 0, None, things()),
            (
                Rotation,
                Phase::Devices { page: 2 },
                0,
                None,
                Phase::Finished,
            ),
            (
                Sync,
                things(),
                3,
                token(),
                Phase::Things {
                    next_token: token(),
                },
            ),
            (
                Sync,
                Phase::Things {
                    next_token: token(),
                },
                0,
                None,
                Phase::Finished,
            ),
            (Sync, Phase::Finished, 0, None, Phase::Finished),
            (Rotation, Phase::Finished, 0, None, Phase::Finished),
        ] {
            assert_eq!(
                phase.after_page(kind, PAGE, listed, next_token.clone(), false),
                expected,
                "{kind:?} {phase:?}"
            );
        }
    }

    #[test]
    fn the_deep_check_goes_round_once_from_where_the_last_stopped() {
        let deep = |page, first, wrapped| Phase::DeepCheck {
            page,
            first,
            wrapped,
        };
        let full = PAGE as usize;
        for (phase, listed, enough, expected) in [
            (deep(1, 1, false), full, false, deep(2, 1, false)),
            (deep(4, 1, false), 7, false, Phase::Finished),
            (deep(2, 1, false), full, true, Phase::Finished),
            // Begun on page 3: to the end, then pages 1 and 2.
            (deep(3, 3, false), full, false, deep(4, 3, false)),
            (deep(4, 3, false), 7, false, deep(1, 3, true)),
            (deep(1, 3, true), full, false, deep(2, 3, true)),
            (deep(2, 3, true), full, false, Phase::Finished),
            // The listing shrank below where it began.
            (deep(9, 9, false), 0, false, deep(1, 9, true)),
            (deep(2, 9, true), 3, false, Phase::Finished),
        ] {
            assert_eq!(
                phase.after_page(RunKind::Sync, PAGE, listed, None, enough),
                expected,
                "{phase:?} listed {listed}"
            );
        }
        assert_eq!(Phase::deep_check_resumes(2, PAGE, full), 3);
        assert_eq!(Phase::deep_check_resumes(4, PAGE, 7), 1);
    }

    #[test]
    fn a_deep_check_that_changed_a_device_counts_it_once_where_it_left_it() {
        let sync = RunRequest::Sync { confirmed: false };
        let mut run = ReconcileRun::new("r".into(), "t", "i", sync, "now".into());
        run.tally("a", true, Ok(Outcome::InSync));
        run.tally("b", true, Ok(Outcome::InSync));
        run.tally("c", false, Ok(Outcome::Nothing));
        run.recount("a", true, Outcome::InSync, Ok(Outcome::InSync));
        run.recount("b", true, Outcome::InSync, Ok(Outcome::Provisioned));
        run.recount("c", false, Outcome::Nothing, Ok(Outcome::Nothing));
        let counts = &run.counts;
        assert_eq!(
            (counts.deep_checked, counts.in_sync, counts.provisioned),
            (3, 2, 1)
        );
        assert_eq!(run.devices.unwrap().provisioned, 2);
        run.recount(
            "a",
            true,
            Outcome::InSync,
            Err(NotDone::Failed("no".into())),
        );
        let census = run.devices.unwrap();
        assert_eq!((census.provisioned, census.failed), (1, 1));
    }

    #[test]
    fn an_invocation_stops_only_past_its_deadline_with_work_left() {
        assert!(checkpoint_here(&Phase::Devices { page: 3 }, true));
        assert!(!checkpoint_here(&Phase::Devices { page: 3 }, false));
        assert!(!checkpoint_here(&Phase::Finished, true));
    }

    #[test]
    fn every_outcome_is_counted_and_failures_are_listed_up_to_a_limit() {
        let sync = RunRequest::Sync { confirmed: false };
        let mut run = ReconcileRun::new("r".into(), "t", "i", sync, "now".into());
        for outcome in [
            Outcome::Provisioned,
            Outcome::Repaired,
            Outcome::Disabled,
            Outcome::Removed,
            Outcome::Conflict,
            Outcome::InSync,
            Outcome::Nothing,
            Outcome::HandedOver,
            Outcome::Deferred,
            Outcome::Rotated,
        ] {
            run.tally("d", true, Ok(outcome));
        }
        for i in 0..150 {
            run.tally(&format!("d{i}"), true, Err(NotDone::Failed("no".into())));
        }
        for i in 0..3 {
            run.tally(
                &format!("r{i}"),
                true,
                Err(NotDone::Refused("waiting".into())),
            );
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
        assert_eq!(run.counts.deferred, 1);
        assert_eq!((run.counts.rotated, run.counts.refused), (1, 3));
        assert_eq!(run.refusals.len(), 3);
        assert_eq!(run.refusals[2].device_id, "r2");
        // The second pass adds only what it changed.
        run.pass = Pass::Apply;
        run.tally("d", true, Ok(Outcome::InSync));
        run.tally("d", true, Ok(Outcome::Removed));
        assert_eq!((run.counts.in_sync, run.counts.removed), (2, 2));
    }

    #[test]
    fn a_sync_run_counts_each_device_in_the_state_it_left_it() {
        use DeviceState::*;
        let failed = || Err(NotDone::Failed("no".into()));
        let refused = || Err(NotDone::Refused("waiting".into()));
        for (result, accepted, expected) in [
            (Ok(Outcome::Provisioned), true, Some(Provisioned)),
            (Ok(Outcome::Repaired), true, Some(Provisioned)),
            (Ok(Outcome::Rotated), true, Some(Provisioned)),
            (Ok(Outcome::InSync), true, Some(Provisioned)),
            (Ok(Outcome::InSync), false, Some(Disabled)),
            (Ok(Outcome::Disabled), false, Some(Disabled)),
            (Ok(Outcome::Conflict), true, Some(Conflict)),
            (Ok(Outcome::Conflict), false, Some(Conflict)),
            (failed(), true, Some(Failed)),
            (Ok(Outcome::Removed), false, None),
            (Ok(Outcome::Nothing), false, None),
            (Ok(Outcome::HandedOver), true, None),
            (Ok(Outcome::Deferred), false, None),
            (refused(), true, None),
        ] {
            assert_eq!(
                Census::state_of(&result, accepted),
                expected,
                "{result:?} accepted={accepted}"
            );
        }
        // Counted once per walk: the second pass adds what it changed.
        let sync = RunRequest::Sync { confirmed: false };
        let mut run = ReconcileRun::new("r".into(), "t", "i", sync, "now".into());
        run.tally("a", true, Ok(Outcome::InSync));
        run.tally("b", false, Ok(Outcome::Deferred));
        run.tally("c", true, Ok(Outcome::Conflict));
        run.pass = Pass::Apply;
        run.tally("a", true, Ok(Outcome::InSync));
        run.tally("b", false, Ok(Outcome::Disabled));
        let census = run.devices.unwrap();
        assert_eq!(
            (
                census.provisioned,
                census.disabled,
                census.conflict,
                census.failed
            ),
            (1, 1, 1, 0)
        );
        // A rotation run keeps no census.
        let rotation = RunRequest::Rotation(None);
        let mut run = ReconcileRun::new("r".into(), "t", "i", rotation, "now".into());
        run.tally("a", true, Ok(Outcome::Rotated));
        assert_eq!(run.devices, None);
    }

    #[test]
    fn the_safety_limit_needs_both_the_share_and_the_count() {
        let limit = SafetyLimit::default();
        for (changes, managed, exceeded) in [
            (0, 0, false),
            (5, 5, false),    // all of them, but not more than 5
            (6, 100, false),  // more than 5, but 6 %
            (10, 100, false), // exactly 10 %
            (11, 100, true),  // more than 10 % and more than 5
            (6, 6, true),
            (100, 100, true), // everything, as a wrong Mender URL would
            (900, 10_000, false),
            (1001, 10_000, true),
        ] {
            assert_eq!(
                limit.exceeded_by(changes, managed),
                exceeded,
                "{changes}/{managed}"
            );
        }
    }

    #[test]
    fn a_walk_ends_applies_or_holds() {
        let run = |pass, deferred, managed, confirmed| {
            let request = RunRequest::Sync { confirmed };
            let mut run = ReconcileRun::new("r".into(), "t", "i", request, "now".into());
            run.pass = pass;
            run.deep_check_done = true;
            run.counts.deferred = deferred;
            run.managed = managed;
            run
        };
        let limit = SafetyLimit::default();
        for (pass, deferred, managed, confirmed, expected) in [
            (Pass::Survey, 0, 100, false, AfterWalk::Done),
            (Pass::Survey, 3, 100, false, AfterWalk::Apply),
            (Pass::Survey, 50, 100, false, AfterWalk::Hold),
            (Pass::Survey, 50, 100, true, AfterWalk::Apply),
            (Pass::Apply, 50, 100, false, AfterWalk::Done),
        ] {
            assert_eq!(
                after_walk(&run(pass, deferred, managed, confirmed), limit),
                expected,
                "{pass:?} {deferred}/{managed} confirmed={confirmed}"
            );
        }
        // The survey's deep check comes first, whatever was deferred.
        let mut surveyed = run(Pass::Survey, 50, 100, false);
        surveyed.deep_check_done = false;
        assert_eq!(after_walk(&surveyed, limit), AfterWalk::DeepCheck);
        // A rotation run walks once: it never disables or removes.
        let rotation = RunRequest::Rotation(None);
        let mut run = ReconcileRun::new("r".into(), "t", "i", rotation, "now".into());
        run.counts.deferred = 50;
        assert_eq!(after_walk(&run, limit), AfterWalk::Done);
    }

    #[test]
    fn a_sync_run_record_reads_as_before_kinds_existed() {
        let sync = RunRequest::Sync { confirmed: false };
        let run = ReconcileRun::new("r".into(), "t", "i", sync, "now".into());
        let mut stored = serde_json::to_value(&run).unwrap();
        for field in ["kind", "refusals", "scope"] {
            stored.as_object_mut().unwrap().remove(field);
        }
        let read: ReconcileRun = serde_json::from_value(stored).unwrap();
        assert_eq!(read.kind, RunKind::Sync);
        let scoped = RunRequest::Rotation(Some(Scope::Group("bench".into())));
        let run = ReconcileRun::new("r".into(), "t", "i", scoped, "now".into());
        let shown = serde_json::to_value(&run).unwrap();
        assert_eq!(shown["kind"], "rotation");
        for kind in [RunKind::Sync, RunKind::Rotation] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        assert_eq!(shown["scope"], serde_json::json!({ "group": "bench" }));
    }
}
