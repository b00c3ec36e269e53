//! The state node against hostile or stale workers, on a real `nats-server`
//! on loopback: requests are scoped by the running job, never the payload;
//! a copy of a job published after the duplicate window never runs twice;
//! a job message too large to publish is dead-lettered; and the plugin's
//! config never travels in a job message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt;
use reyna_artifacts::{ChatServer, NatsServer};
use reyna_engine::{Engine, EngineConfig, JobCopy, RemoteJob, RemoteRefusal};
use reyna_runtime::Blob;
use reyna_types::Digest;

use crate::rpc::{self, CallError, EffectRequest, JobRef, Request};
use crate::{
    JOBS_CONSUMER, JOBS_SUBJECT, StateNode, StateNodeConfig, Worker, WorkerConfig, decode,
    ensure_streams,
};

const TENANT: &str = "acme";
/// Bound on anything settling (debug builds on a shared machine).
const SETTLE: Duration = Duration::from_secs(120);

async fn open(dir: &Path, tune: impl FnOnce(&mut EngineConfig)) -> Engine {
    let mut config = EngineConfig::new(dir);
    config.backoff_base = Duration::from_millis(50);
    config.backoff_max = Duration::from_millis(500);
    tune(&mut config);
    let engine = Engine::open(config).await.unwrap();
    engine.register_bundled_schemas().await.unwrap();
    for name in ["llm", "text-expand", "word-stats"] {
        engine
            .upload_plugin(
                reyna_artifacts::bytes(name).unwrap(),
                None,
                reyna_engine::InstallPolicy::All,
                "test",
            )
            .await
            .unwrap();
    }
    engine
}

async fn configure(engine: &Engine, plugin: &str, config: &[(&str, &str)]) {
    let config = config
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    engine
        .configure_installation(TENANT, plugin, config)
        .await
        .unwrap();
}

/// Attaches a state node and starts the engine; also returns every job
/// message published from now on, as a subscriber on the jobs subject sees
/// it.
async fn attach(engine: &Engine, server: &NatsServer) -> (StateNode, async_nats::Subscriber) {
    let node = StateNode::attach(engine, StateNodeConfig::new(server.url()))
        .await
        .unwrap();
    engine.start();
    let client = async_nats::connect(server.url()).await.unwrap();
    let published = client.subscribe(format!("{JOBS_SUBJECT}.>")).await.unwrap();
    (node, published)
}

async fn worker(server: &NatsServer, dir: &Path) -> Worker {
    let mut config = WorkerConfig::new(server.url(), dir.join("worker"));
    config.ack_wait = Duration::from_secs(5);
    Worker::start(config).await.unwrap()
}

fn text(text: &str) -> Vec<u8> {
    serde_json::json!({ "content": text })
        .to_string()
        .into_bytes()
}

fn nats(dir: &Path) -> NatsServer {
    let dir = dir.join("nats");
    std::fs::create_dir_all(&dir).unwrap();
    NatsServer::start(&dir).unwrap()
}

/// Takes `n` job messages off the shared consumer as a worker would,
/// without acking them.
async fn take_jobs(url: &str, n: usize) -> Vec<(RemoteJob, JobCopy)> {
    let client = async_nats::connect(url).await.unwrap();
    let js = jetstream::new(client);
    // The state node may not have set the streams up yet.
    let (stream, _) = ensure_streams(&js, None).await.unwrap();
    let consumer = stream
        .get_or_create_consumer(
            JOBS_CONSUMER,
            jetstream::consumer::pull::Config {
                durable_name: Some(JOBS_CONSUMER.to_owned()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(60),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let mut jobs = Vec::new();
    while jobs.len() < n {
        let message = tokio::time::timeout(SETTLE, messages.next())
            .await
            .expect("a job message")
            .unwrap()
            .unwrap();
        let info = message.info().unwrap();
        let copy = JobCopy {
            sequence: info.stream_sequence,
            delivery: info.delivered as u64,
        };
        jobs.push((decode::<RemoteJob>(&message.payload).unwrap(), copy));
    }
    jobs
}

fn job_ref(job: &RemoteJob, copy: JobCopy) -> JobRef {
    JobRef {
        job_id: job.job_id.clone(),
        attempt: job.attempt,
        copy,
    }
}

fn refusal(result: Result<Option<Vec<u8>>, CallError>) -> RemoteRefusal {
    match result {
        Err(CallError::Refused(refusal)) => refusal,
        Err(CallError::Failed(e)) => panic!("expected a refusal, got the failure {e}"),
        Ok(_) => panic!("expected a refusal, got an answer"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_requests_are_scoped_by_the_running_job_never_the_payload() {
    let dir = tempfile::tempdir().unwrap();
    let server = nats(dir.path());
    let engine = open(&dir.path().join("state"), |_| {}).await;
    let secret = engine
        .create_blob(
            "other",
            "text-input-v1",
            text("Other's private text."),
            vec![],
        )
        .await
        .unwrap();
    // acme's installation of word-stats holds a secret: the claim hands it
    // over, no job message carries it.
    let secret_value = "sk-nats-secret-7c1e";
    configure(&engine, "word-stats", &[("api_key", secret_value)]).await;
    let (node, _) = attach(&engine, &server).await;
    let input = engine
        .create_blob(TENANT, "text-input-v1", text("A short text."), vec![])
        .await
        .unwrap();
    // Three jobs are out (other's two and acme's text-expand and
    // word-stats); find acme's.
    let jobs = take_jobs(&server.url(), 4).await;
    let (stats, copy) = jobs
        .iter()
        .find(|(j, _)| j.plugin == "word-stats" && j.event.blob.tenant == TENANT)
        .cloned()
        .unwrap();
    let (expand, _) = jobs
        .iter()
        .find(|(j, _)| j.plugin == "text-expand" && j.event.blob.tenant == TENANT)
        .cloned()
        .unwrap();
    for (job, _) in &jobs {
        let message = serde_json::to_string(job).unwrap();
        assert!(!message.contains(secret_value), "a job message: {message}");
    }
    let client = async_nats::connect(server.url()).await.unwrap();
    let mine = job_ref(&stats, copy);

    // Before the claim, the job lends nothing.
    let unclaimed = rpc::call(
        &client,
        TENANT,
        &mine,
        Request::GetBlob {
            id: input.id.to_string(),
        },
    )
    .await;
    assert!(matches!(
        refusal(unclaimed),
        RemoteRefusal::OtherCopy { .. }
    ));
    // A job that is not running, or a stale attempt, cannot be claimed.
    let mut unknown = mine.clone();
    unknown.job_id = "01JZZZZZZZZZZZZZZZZZZZZZZZ".into();
    let r = refusal(rpc::call(&client, TENANT, &unknown, Request::Claim).await);
    assert!(matches!(r, RemoteRefusal::NotRunning { .. }), "{r}");
    let mut stale = mine.clone();
    stale.attempt += 1;
    let r = refusal(rpc::call(&client, TENANT, &stale, Request::Claim).await);
    assert_eq!(
        r,
        RemoteRefusal::NotRunning {
            job: stats.job_id.clone(),
            attempt: stats.attempt + 1
        }
    );

    // The claim hands over the installation's config, secrets marked;
    // another copy is refused after it.
    let config = rpc::call(&client, TENANT, &mine, Request::Claim)
        .await
        .unwrap()
        .unwrap();
    let config = decode::<reyna_engine::CallConfig>(&config).unwrap();
    assert_eq!(
        config.config.get("api_key").map(String::as_str),
        Some(secret_value)
    );
    assert!(config.secret_keys.contains("api_key"));
    let mut other_copy = mine.clone();
    other_copy.copy.sequence += 1000;
    let r = refusal(rpc::call(&client, TENANT, &other_copy, Request::Claim).await);
    assert!(matches!(r, RemoteRefusal::OtherCopy { .. }), "{r}");

    // The tenant is the job's, whatever the subject says: another
    // tenant's blob reads as absent, the job's own input is there.
    let read = |id: String| {
        let (client, mine) = (client.clone(), mine.clone());
        async move {
            let bytes = rpc::call(&client, "other", &mine, Request::GetBlob { id })
                .await
                .unwrap()
                .unwrap();
            decode::<Option<Blob>>(&bytes).unwrap()
        }
    };
    assert_eq!(read(secret.id.to_string()).await, None);
    assert_eq!(read(input.id.to_string()).await.unwrap().tenant, TENANT);

    // Only the job's own component is served to it.
    let theirs = Request::Bytes {
        digest: expand.component_digest,
    };
    let r = refusal(rpc::call(&client, TENANT, &mine, theirs).await);
    assert!(matches!(r, RemoteRefusal::NotForThisJob { .. }), "{r}");
    let own = rpc::fetch_bytes(&client, TENANT, &mine, &stats.component_digest).await;
    assert_eq!(Digest::of(&own.unwrap()), stats.component_digest);
    let unknown_digest = Request::Bytes {
        digest: Digest::of(b"anything"),
    };
    let r = refusal(rpc::call(&client, TENANT, &mine, unknown_digest).await);
    assert!(matches!(r, RemoteRefusal::NotForThisJob { .. }), "{r}");

    // word-stats declares no effect: the state node performs none for it.
    let call = EffectRequest {
        job: mine.clone(),
        name: "llm".into(),
        request: b"{}".to_vec(),
    };
    match rpc::effect(&client, TENANT, call).await {
        Err(CallError::Refused(r)) => assert_eq!(
            r,
            RemoteRefusal::UndeclaredEffect {
                job: stats.job_id.clone(),
                plugin: "word-stats".into(),
                effect: "llm".into()
            }
        ),
        other => panic!("expected a refusal, got {:?}", other.map(|a| a.record)),
    }
    // Nor for a copy that does not hold the claim, of a job that declares it.
    let call = EffectRequest {
        job: job_ref(&expand, copy),
        name: "llm".into(),
        request: b"{}".to_vec(),
    };
    assert!(matches!(
        rpc::effect(&client, TENANT, call).await,
        Err(CallError::Refused(RemoteRefusal::OtherCopy { .. }))
    ));
    engine.shutdown().await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_published_after_the_duplicate_window_never_runs_twice() {
    let chat = ChatServer::start("A longer text, written by a model.").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = nats(dir.path());
    let engine = open(&dir.path().join("state"), |config| {
        config.remote.duplicate_window = Duration::from_secs(2);
        config.remote.resend_after = Duration::from_secs(1);
        config.remote.republish_interval = Duration::from_millis(100);
        config.effects.allow_private = true; // the model server is on loopback
        config.effects.approved_hosts.insert(
            "llm".into(),
            vec![format!("http://127.0.0.1:{}", chat.port())],
        );
    })
    .await;
    configure(&engine, "llm", &[("endpoint", &chat.endpoint())]).await;
    configure(&engine, "text-expand", &[("use_llm", "true")]).await;
    let (node, mut published) = attach(&engine, &server).await;
    let input = engine
        .create_blob(TENANT, "text-input-v1", text("A short text."), vec![])
        .await
        .unwrap();

    // No worker yet: the jobs wait past the window and are stored again.
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = jetstream::new(client);
    let (mut stream, _) = ensure_streams(&js, Some(Duration::from_secs(2)))
        .await
        .unwrap();
    tokio::time::timeout(SETTLE, async {
        while stream.info().await.unwrap().state.messages < 4 {
            published.next().await.unwrap();
        }
    })
    .await
    .expect("each job stored twice, outside the duplicate window");

    let worker = worker(&server, dir.path()).await;
    assert!(engine.wait_idle(SETTLE).await);
    // The later copies are pulled too, refused and dropped unrun.
    tokio::time::timeout(SETTLE, async {
        while worker.stats().refused < 2 {
            let _ = tokio::time::timeout(Duration::from_millis(200), published.next()).await;
        }
    })
    .await
    .expect("the later copies refused");
    let stats = worker.shutdown().await;

    assert_eq!(chat.received().len(), 1, "the effect ran once");
    let counts = engine.store().counts().unwrap();
    // text-expand and word-stats on the input, word-stats on the expansion.
    assert_eq!(
        (counts.blobs, counts.jobs_done, counts.jobs_dead),
        (4, 3, 0)
    );
    let children = engine.store().children(TENANT, input.id).unwrap();
    assert_eq!(children.len(), 2, "one expanded text and one word stats");
    assert_eq!(stats.completed, 3, "{stats:?}");
    assert!(
        stats.refused >= 2,
        "the later copies were dropped: {stats:?}"
    );
    engine.shutdown().await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_message_over_max_payload_is_dead_lettered_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let nats_dir = dir.path().join("nats");
    std::fs::create_dir_all(&nats_dir).unwrap();
    let server = NatsServer::start_with_max_payload(&nats_dir, 4096).unwrap();
    let engine = open(&dir.path().join("state"), |_| {}).await;
    // Parents nobody processes; together they make the job message (its
    // input's metadata) larger than the server takes.
    let mut parents = Vec::new();
    for words in 0..160 {
        let doc = serde_json::json!({ "words": words })
            .to_string()
            .into_bytes();
        let blob = engine
            .create_blob(TENANT, "word-count-v1", doc, vec![])
            .await
            .unwrap();
        parents.push(blob.id.to_string());
    }
    let (node, _) = attach(&engine, &server).await;
    engine
        .create_blob(TENANT, "text-input-v1", text("A short text."), parents)
        .await
        .unwrap();
    assert!(
        engine.wait_idle(SETTLE).await,
        "the jobs must not be retried forever"
    );
    let counts = engine.store().counts().unwrap();
    assert_eq!((counts.jobs_dead, counts.jobs_done), (2, 0));
    let letters = engine
        .store()
        .list_dead_letters(Some(TENANT), None, 10)
        .unwrap();
    for letter in &letters.items {
        assert!(
            letter.reason.contains("max_payload") && letter.reason.contains("4096"),
            "{}",
            letter.reason
        );
    }
    assert_eq!(engine.remote_outstanding(), 0);
    engine.shutdown().await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_and_secrets_reach_the_worker_only_through_the_claim() {
    const SECRET: &str = "s3cr3t-token-value-1234";
    let dir = tempfile::tempdir().unwrap();
    let server = nats(dir.path());
    let engine = open(&dir.path().join("state"), |_| {}).await;
    let config = [("expansion_ratio", "5"), ("api_token", SECRET)];
    configure(&engine, "text-expand", &config).await;
    let (node, mut published) = attach(&engine, &server).await;
    let input = engine
        .create_blob(TENANT, "text-input-v1", text("One two three four."), vec![])
        .await
        .unwrap();
    let worker = worker(&server, dir.path()).await;
    assert!(engine.wait_idle(SETTLE).await);
    let stats = worker.shutdown().await;
    assert!(stats.completed >= 3, "{stats:?}");

    // Every job message published: none carries a config value.
    let mut seen = 0;
    while let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_millis(500), published.next()).await
    {
        seen += 1;
        let payload = String::from_utf8_lossy(&message.payload);
        assert!(
            !payload.contains(SECRET),
            "a secret travelled in a job message"
        );
        // The config's keys: `expansion_ratio` is also a field of the
        // expanded-text-v1 that word-stats receives, `api_token` is only config.
        assert!(
            !payload.contains("api_token"),
            "config travelled in a job message"
        );
    }
    assert!(seen >= 3, "{seen} job messages seen");
    // The worker had the config: the text is expanded five times.
    let expanded = engine
        .store()
        .children(TENANT, input.id)
        .unwrap()
        .into_iter()
        .find(|b| b.schema == "expanded-text-v1")
        .unwrap();
    let data = engine
        .store()
        .get_blob_data(TENANT, expanded.id)
        .unwrap()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&data).unwrap();
    let words = doc["expanded"].as_str().unwrap().split_whitespace().count();
    assert!(
        words >= 20,
        "expansion_ratio 5 applied to 4 words: {words} words"
    );
    engine.shutdown().await;
    node.shutdown().await;
}
