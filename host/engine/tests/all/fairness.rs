//! Fair scheduling: one tenant's backlog delays another tenant's job by a
//! bounded number of claims, not by the backlog.

use reyna_engine::reyna_store::JobState;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_noisy_neighbours_backlog_delays_a_quiet_tenants_job_by_a_bounded_number_of_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.workers = 2;
    let engine = engine_with(config).await;
    upload(&engine, "word-count").await;
    // acme queues 10,000 jobs before dispatch starts; then zeta one.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..10_000 {
        let engine = engine.clone();
        tasks.spawn(async move {
            let data = format!(r#"{{"content":"noisy text {i}"}}"#).into_bytes();
            engine
                .create_blob("acme", "text-input-v1", data, vec![])
                .await
                .unwrap();
        });
        if tasks.len() >= 256 {
            tasks.join_next().await.unwrap().unwrap();
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let quiet = engine
        .create_blob(
            "zeta",
            "text-input-v1",
            br#"{"content":"quiet text"}"#.to_vec(),
            vec![],
        )
        .await
        .unwrap();
    engine.start();
    let done =
        || engine.store().jobs_for_blob("zeta", quiet.id).unwrap()[0].state == JobState::Done;
    wait_until(&engine, "zeta's job is done", done).await;
    let pending = engine.counts().unwrap().jobs_pending;
    let served = 10_000 - pending;
    assert!(
        served <= 200,
        "zeta's one job waited while {served} of acme's 10,000 were served"
    );
    engine.shutdown().await;
}
