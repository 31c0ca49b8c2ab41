//! Failure injection at the stages of an apply, so the tests can stop a job where a crash or a
//! timeout would and check that the next delivery ends as an uninterrupted run would.

#[cfg(feature = "failpoints")]
use std::collections::HashMap;
#[cfg(feature = "failpoints")]
use std::sync::{Arc, Mutex};

use crate::ImportError;

/// A stage of an apply where a failure can be injected (see [`Failpoints`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// The plan is saved and the job says `applying`; nothing is written yet.
    BeforeFirstWrite,
    /// The first chunk of rows is committed, the others are not.
    MidApply,
    /// Every row is written; the invitations are not released and the job is not finished.
    BeforeCommit,
    /// The job is `applied`; the tenant's lock is still held.
    BeforeLockRelease,
}

/// Failures to inject at apply stages: the real code path asks at each stage whether to stop
/// there, as a crash or a timeout would stop it. Empty (nothing injected) unless a test arms it.
/// Compiled in only with the `failpoints` feature, which the end-to-end tests turn on: the
/// functions deployed to Lambda carry no such switch, and each stage's question is a no-op.
#[derive(Debug, Clone, Default)]
pub struct Failpoints(#[cfg(feature = "failpoints")] Arc<Mutex<HashMap<Stage, u32>>>);

impl Failpoints {
    /// Makes the next `times` passes through `stage` fail.
    #[cfg(feature = "failpoints")]
    pub fn arm(&self, stage: Stage, times: u32) {
        if let Ok(mut armed) = self.0.lock() {
            armed.insert(stage, times);
        }
    }

    #[cfg(feature = "failpoints")]
    pub(crate) fn check(&self, stage: Stage) -> Result<(), ImportError> {
        let Ok(mut armed) = self.0.lock() else {
            return Ok(());
        };
        match armed.get_mut(&stage) {
            Some(n) if *n > 0 => {
                *n -= 1;
                Err(ImportError::Injected(stage))
            }
            _ => Ok(()),
        }
    }

    #[cfg(not(feature = "failpoints"))]
    #[inline(always)]
    pub(crate) fn check(&self, _stage: Stage) -> Result<(), ImportError> {
        Ok(())
    }
}
