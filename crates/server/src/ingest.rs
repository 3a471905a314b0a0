//! Group commit for vital signs. A commit is durable only after the database syncs its log to disk
//! (SQLite `synchronous=FULL`; PostgreSQL's WAL flush), and on this class of machine a sync costs
//! milliseconds, which would cap one-commit-per-request at a few hundred readings per second. One
//! writer task therefore takes every batch waiting at that moment, writes them in one transaction
//! with one sync, and only then acknowledges each: throughput scales with the number of monitors,
//! and nothing is acknowledged before it is durable.
//!
//! Each batch keeps its own audit entry and events; the group's readings, events and audit entries
//! each go in as multi-row statements, so a group costs a few statements whatever its size. If the
//! shared transaction fails, every batch of the group is retried in its own transaction, so one bad
//! batch cannot fail another.

use ketaflow_clinic::vitals::AlarmRules;
use ketaflow_store::Store;
use tokio::sync::{mpsc, oneshot};

use crate::api::live::LiveHub;
use crate::api::sessions::{VitalsJob, VitalsWritten, write_vitals_many};
use crate::error::ApiError;

/// The most batches one transaction takes.
const MAX_GROUP: usize = 256;

type Reply = oneshot::Sender<Result<VitalsWritten, ApiError>>;

/// The handle request handlers submit batches through.
#[derive(Debug, Clone)]
pub struct VitalsIngest {
    sender: mpsc::Sender<(VitalsJob, Reply)>,
}

impl VitalsIngest {
    /// Starts the writer task on the current Tokio runtime.
    pub fn start(store: Store, rules: AlarmRules, live: LiveHub) -> VitalsIngest {
        let (sender, receiver) = mpsc::channel(4096);
        tokio::spawn(run(store, rules, live, receiver));
        VitalsIngest { sender }
    }

    /// Writes a batch; returns when it is committed (or failed).
    pub(crate) async fn submit(&self, job: VitalsJob) -> Result<VitalsWritten, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send((job, reply))
            .await
            .map_err(|_| ApiError::Internal("the vital-sign writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| ApiError::Internal("the vital-sign writer dropped a batch".into()))?
    }
}

async fn run(
    store: Store,
    rules: AlarmRules,
    live: LiveHub,
    mut receiver: mpsc::Receiver<(VitalsJob, Reply)>,
) {
    while let Some(first) = receiver.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let (jobs, replies): (Vec<VitalsJob>, Vec<Reply>) = group.into_iter().unzip();
        let outcomes = write_group(&store, &rules, &jobs).await;
        for (outcome, reply) in outcomes.into_iter().zip(replies) {
            if let Ok(written) = &outcome {
                for e in &written.events {
                    live.publish(e.clone());
                }
            }
            // The client may have gone; its readings are stored all the same.
            let _ = reply.send(outcome);
        }
    }
}

async fn write_group(
    store: &Store,
    rules: &AlarmRules,
    jobs: &[VitalsJob],
) -> Vec<Result<VitalsWritten, ApiError>> {
    if jobs.len() > 1 {
        match write_together(store, rules, jobs).await {
            Ok(written) => return written.into_iter().map(Ok).collect(),
            Err(e) => {
                tracing::warn!(error = %e, batches = jobs.len(), "group write failed; retrying each batch alone")
            }
        }
    }
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in jobs {
        outcomes.push(
            write_together(store, rules, std::slice::from_ref(job))
                .await
                .map(|mut w| w.remove(0)),
        );
    }
    outcomes
}

async fn write_together(
    store: &Store,
    rules: &AlarmRules,
    jobs: &[VitalsJob],
) -> Result<Vec<VitalsWritten>, ApiError> {
    let mut tx = store.begin().await?;
    let written = write_vitals_many(&mut tx, rules, jobs).await?;
    tx.commit().await?;
    Ok(written)
}
