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
use crate::api::sessions::{
    VitalsJob, VitalsWritten, closed_while_waiting, sessions_still_open, write_vitals_many,
};
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
            Ok(outcomes) => return outcomes,
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
                .and_then(|mut outcome| outcome.remove(0)),
        );
    }
    outcomes
}

/// One transaction for the group: the outer error is the transaction's, the inner ones are
/// batches refused on their own. A batch whose session was closed while it waited stores nothing:
/// the group is written, the sessions are checked under the write lock (see
/// [`sessions_still_open`]), and if any has closed the transaction is rolled back and the group
/// written again without it (rare: a discharge racing a monitor's last readings).
async fn write_together(
    store: &Store,
    rules: &AlarmRules,
    jobs: &[VitalsJob],
) -> Result<Vec<Result<VitalsWritten, ApiError>>, ApiError> {
    let mut candidates: Vec<&VitalsJob> = jobs.iter().collect();
    loop {
        if candidates.is_empty() {
            return Ok(jobs.iter().map(|_| Err(closed_while_waiting())).collect());
        }
        let mut tx = store.begin().await?;
        let written = write_vitals_many(&mut tx, rules, &candidates).await?;
        let open = sessions_still_open(&mut tx, &candidates).await?;
        if candidates.iter().all(|job| open.contains(&job.session_id)) {
            tx.commit().await?;
            let mut written = written.into_iter();
            return Ok(jobs
                .iter()
                .map(|job| match open.contains(&job.session_id) {
                    true => Ok(written.next().expect("one result per written batch")),
                    false => Err(closed_while_waiting()),
                })
                .collect());
        }
        tx.rollback().await?;
        candidates.retain(|job| open.contains(&job.session_id));
    }
}

#[cfg(test)]
mod tests {
    use ketaflow_store::{Actor, NewRecord};
    use time::macros::datetime;

    use super::*;
    use crate::api::sessions::ReadingDoc;

    fn job(session_id: uuid::Uuid, key: &str) -> VitalsJob {
        let reading: ReadingDoc = serde_json::from_value(serde_json::json!({
            "idempotency_key": key,
            "systolic_mmhg": 124.0, "diastolic_mmhg": 78.0, "heart_rate_per_min": 72.0,
            "spo2_percent": 98.0, "respiratory_rate_per_min": 14.0,
        }))
        .unwrap();
        let signs = reading.vital_signs(0).unwrap();
        let at = datetime!(2026-03-02 09:00:00 UTC);
        VitalsJob {
            session_id,
            actor: Actor::system("test monitor"),
            source: "device",
            recorded_by: "device:test".into(),
            readings: vec![(reading, signs, at)],
            baseline: None,
            received_at: at,
        }
    }

    /// The handler checks that the session is open, but a session can be discharged while its
    /// batch waits for the writer: the writer checks again in its transaction, refuses that batch
    /// with a conflict and stores nothing for it, and still writes the rest of the group.
    #[tokio::test]
    async fn a_batch_for_a_session_closed_while_it_waited_is_refused_and_the_group_written() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ketaflow.db").display());
        let store = Store::connect(&url).await.unwrap();
        let data = serde_json::json!({});
        let mut tx = store.begin().await.unwrap();
        let mut sessions = Vec::new();
        for label in ["open", "closed"] {
            let new = NewRecord {
                kind: "session",
                parent_id: None,
                label,
                data: &data,
            };
            let id = tx
                .insert_record(&new, datetime!(2026-03-02 08:00:00 UTC))
                .await
                .unwrap()
                .id;
            tx.set_in_progress("session", id, true).await.unwrap();
            sessions.push(id);
        }
        tx.commit().await.unwrap();
        // The second session is discharged after its batch was checked and queued.
        let mut tx = store.begin().await.unwrap();
        tx.set_in_progress("session", sessions[1], false).await.unwrap();
        tx.commit().await.unwrap();

        let group = [job(sessions[0], "a-1"), job(sessions[1], "b-1")];
        let outcomes = write_group(&store, &AlarmRules::default(), &group).await;
        let stored = outcomes[0].as_ref().expect("the open session's batch is written");
        assert_eq!(stored.ack.stored, 1);
        match &outcomes[1] {
            Err(ApiError::Conflict(message)) => assert!(message.contains("closed"), "{message}"),
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert_eq!(store.list_vitals(sessions[0]).await.unwrap().len(), 1);
        assert!(store.list_vitals(sessions[1]).await.unwrap().is_empty());

        // Alone (the path a failed group falls back to), the same batch is refused the same way.
        let alone = write_group(&store, &AlarmRules::default(), &group[1..]).await;
        assert!(matches!(alone[0], Err(ApiError::Conflict(_))));
        assert!(store.list_vitals(sessions[1]).await.unwrap().is_empty());
    }
}
