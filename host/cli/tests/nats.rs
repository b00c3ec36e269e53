//! Scale-out on NATS JetStream against a real `nats-server` on a loopback
//! port: a state node (the engine with `reyna_nats::StateNode`, in this
//! process) and `reyna worker` processes. Every run is compared with the
//! embedded mode on the same input: the same derived blobs, with the same
//! lineage, none missing, none twice.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reyna_artifacts::NatsServer;
use reyna_engine::reyna_store::{BlobMeta, Counts};
use reyna_engine::{Engine, EngineConfig};
use reyna_nats::{StateNode, StateNodeConfig, Worker, WorkerConfig};

const TENANT: &str = "acme";
/// Bound on a whole run settling (debug builds on a shared 2-core machine).
const SETTLE: Duration = Duration::from_secs(240);

fn texts(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                "Blob {i} of the run. The quick brown fox {} and the dog wakes up.",
                "jumps over the lazy dog ".repeat(i % 5 + 1)
            )
        })
        .collect()
}

async fn open(dir: &Path) -> Engine {
    open_with(dir, |_| {}).await
}

async fn open_with(dir: &Path, tune: impl FnOnce(&mut EngineConfig)) -> Engine {
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

/// Creates one text-input-v1 blob per text, 32 at a time.
async fn ingest(engine: &Engine, texts: &[String]) {
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in texts.chunks(texts.len().div_ceil(32).max(1)) {
        let (engine, chunk) = (engine.clone(), chunk.to_vec());
        tasks.spawn(async move {
            for text in chunk {
                let data = serde_json::json!({ "content": text })
                    .to_string()
                    .into_bytes();
                engine
                    .create_blob(TENANT, "text-input-v1", data, vec![])
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

/// Every blob of the tenant as `plugin@version(parents…) schema digest`,
/// recursively through its parents, sorted: equal for two stores exactly when
/// they hold the same derivations of the same inputs, whatever the ids.
fn lineage(engine: &Engine) -> Vec<String> {
    let store = engine.store();
    let mut metas: HashMap<_, BlobMeta> = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .list_blobs(TENANT, None, cursor.as_deref(), 1000)
            .unwrap();
        for meta in page.items {
            metas.insert(meta.id, meta);
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    fn canon(
        id: &reyna_engine::reyna_store::BlobId,
        metas: &HashMap<reyna_engine::reyna_store::BlobId, BlobMeta>,
        memo: &mut HashMap<reyna_engine::reyna_store::BlobId, String>,
    ) -> String {
        if let Some(done) = memo.get(id) {
            return done.clone();
        }
        let meta = &metas[id];
        let parents: Vec<String> = meta.parents.iter().map(|p| canon(p, metas, memo)).collect();
        let producer = meta
            .producer
            .as_ref()
            .map(|p| format!("{}@{}", p.plugin, p.version))
            .unwrap_or_else(|| "input".to_owned());
        let text = format!(
            "{producer}({}) {} {}",
            parents.join(", "),
            meta.schema,
            meta.digest
        );
        memo.insert(*id, text.clone());
        text
    }
    let mut memo = HashMap::new();
    let mut all: Vec<String> = metas
        .keys()
        .map(|id| canon(id, &metas, &mut memo))
        .collect();
    all.sort();
    all
}

/// The embedded mode's lineage and counts for `texts` (the reference).
async fn reference(dir: &Path, texts: &[String]) -> (Vec<String>, Counts) {
    let engine = open(dir).await;
    engine.start();
    ingest(&engine, texts).await;
    assert!(
        engine.wait_idle(SETTLE).await,
        "embedded run did not settle"
    );
    engine.shutdown().await;
    let counts = engine.store().counts().unwrap();
    (lineage(&engine), counts)
}

/// Waits (bounded) until the store holds at least `blobs` blobs.
async fn wait_for_blobs(engine: &Engine, blobs: u64) {
    let mut events = engine.store().watch_events();
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        events.borrow_and_update();
        if engine.store().counts().unwrap().blobs >= blobs {
            return;
        }
        tokio::select! {
            _ = events.changed() => {}
            _ = tokio::time::sleep_until(deadline) => panic!("fewer than {blobs} blobs after {SETTLE:?}"),
        }
    }
}

/// A `reyna worker` process; killed on drop.
struct WorkerProcess(Child);

impl WorkerProcess {
    fn start(url: &str, dir: &Path, name: &str) -> WorkerProcess {
        let child = Command::new(env!("CARGO_BIN_EXE_reyna"))
            .args(["worker", "--nats", url, "--ack-wait", "2s", "--name", name])
            .arg("--data-dir")
            .arg(dir.join(name))
            .env("REYNA_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start reyna worker");
        WorkerProcess(child)
    }

    /// SIGKILL: no chance to publish or ack what it holds.
    fn kill(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn assert_same_as_reference(engine: &Engine, expected: &(Vec<String>, Counts), label: &str) {
    let counts = engine.store().counts().unwrap();
    let check = engine.store().check().unwrap();
    println!(
        "{label}: {} blobs ({} expected), {} edges, jobs done {} dead {}",
        counts.blobs, expected.1.blobs, counts.edges, counts.jobs_done, counts.jobs_dead
    );
    assert!(
        check.problems.is_empty(),
        "store problems: {:?}",
        check.problems
    );
    assert_eq!(counts.jobs_dead, 0, "no job may fail");
    assert_eq!(
        counts.blobs, expected.1.blobs,
        "blob count differs from embedded mode"
    );
    assert_eq!(
        counts.edges, expected.1.edges,
        "edge count differs from embedded mode"
    );
    let got = lineage(engine);
    if got != expected.0 {
        let missing: Vec<_> = expected
            .0
            .iter()
            .filter(|l| !got.contains(l))
            .take(3)
            .collect();
        let extra: Vec<_> = got
            .iter()
            .filter(|l| !expected.0.contains(l))
            .take(3)
            .collect();
        panic!(
            "lineage differs from embedded mode; missing e.g. {missing:?}; extra e.g. {extra:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_and_a_sigkill_give_the_embedded_lineage() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = texts(2000);
    let expected = reference(&dir.path().join("embedded"), &inputs).await;
    assert_eq!(
        expected.1.blobs,
        2000 * 4,
        "each input: expanded text and two word stats"
    );

    std::fs::create_dir_all(dir.path().join("nats")).unwrap();
    let nats = NatsServer::start(&dir.path().join("nats")).unwrap();
    let engine = open(&dir.path().join("state")).await;
    let node = StateNode::attach(&engine, StateNodeConfig::new(nats.url()))
        .await
        .unwrap();
    engine.start();
    let first = WorkerProcess::start(&nats.url(), dir.path(), "w1");
    let _second = WorkerProcess::start(&nats.url(), dir.path(), "w2");

    ingest(&engine, &inputs).await;
    // Mid-run: a quarter of the derived blobs are in.
    wait_for_blobs(&engine, 2000 + 1500).await;
    first.kill();
    let at_kill = engine.store().counts().unwrap().blobs;
    println!("worker w1 killed with {at_kill} of 8000 blobs in");
    assert!(at_kill < 8000, "the kill must land mid-run");
    let _third = WorkerProcess::start(&nats.url(), dir.path(), "w3");

    assert!(
        engine.wait_idle(SETTLE).await,
        "scale-out run did not settle"
    );
    assert_eq!(engine.remote_outstanding(), 0);
    assert_same_as_reference(&engine, &expected, "two workers, one killed");
    engine.shutdown().await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_server_restart_mid_run_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut inputs = texts(620);
    let expected = reference(&dir.path().join("embedded"), &inputs).await;
    let late = inputs.split_off(600);

    let nats_dir = dir.path().join("nats");
    std::fs::create_dir_all(&nats_dir).unwrap();
    let mut nats = NatsServer::start(&nats_dir).unwrap();
    let port = nats.port();
    let engine = open(&dir.path().join("state")).await;
    let node = StateNode::attach(&engine, StateNodeConfig::new(nats.url()))
        .await
        .unwrap();
    engine.start();
    let _worker = WorkerProcess::start(&nats.url(), dir.path(), "w1");

    ingest(&engine, &inputs).await;
    wait_for_blobs(&engine, 600 + 300).await;
    nats.stop().unwrap();
    let at_stop = engine.store().counts().unwrap().blobs;
    println!("nats-server stopped with {at_stop} of 2480 blobs in");
    assert!(at_stop < 2400, "the restart must land mid-run");
    // The state node keeps accepting blobs while NATS is away.
    ingest(&engine, &late).await;
    let _nats = NatsServer::start_on(port, &nats_dir).unwrap();

    assert!(
        engine.wait_idle(SETTLE).await,
        "run did not settle after the restart"
    );
    assert_same_as_reference(&engine, &expected, "nats-server restarted");
    engine.shutdown().await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_node_without_nats_accepts_blobs_and_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = texts(50);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("nats://127.0.0.1:{port}");
    let engine = open(&dir.path().join("state")).await;
    let node = StateNode::attach(&engine, StateNodeConfig::new(&url))
        .await
        .expect("attaching does not wait for the server");
    engine.start();
    assert_eq!(engine.transport_connected(), Some(false));
    ingest(&engine, &inputs).await;
    assert_eq!(engine.store().counts().unwrap().blobs, 50);

    std::fs::create_dir_all(dir.path().join("nats")).unwrap();
    let _nats = NatsServer::start_on(port, &dir.path().join("nats")).unwrap();
    let mut config = WorkerConfig::new(&url, dir.path().join("worker"));
    config.ack_wait = Duration::from_secs(2);
    let worker = Worker::start(config).await.unwrap();

    assert!(
        engine.wait_idle(SETTLE).await,
        "jobs were not published after NATS came up"
    );
    assert_eq!(engine.transport_connected(), Some(true));
    let counts = engine.store().counts().unwrap();
    assert_eq!((counts.blobs, counts.jobs_dead), (50 * 4, 0));
    // Counted once the worker has acked what it holds: a result can be
    // committed before its job's ack returns.
    let stats = worker.shutdown().await;
    assert!(stats.completed >= 150, "{stats:?}");
    engine.shutdown().await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_on_a_worker_calls_its_effect_through_the_state_node() {
    let chat = reyna_artifacts::ChatServer::start("A longer text, written by a model.").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("nats")).unwrap();
    let nats = NatsServer::start(&dir.path().join("nats")).unwrap();
    let engine = open_with(&dir.path().join("state"), |config| {
        config.effects.allow_private = true; // the model server is on loopback
        config.effects.approved_hosts.insert(
            "llm".into(),
            vec![format!("http://127.0.0.1:{}", chat.port())],
        );
    })
    .await;
    let llm = [("endpoint".to_owned(), chat.endpoint())]
        .into_iter()
        .collect();
    engine
        .configure_installation(TENANT, "llm", llm)
        .await
        .unwrap();
    let expand = [("use_llm".to_owned(), "true".to_owned())]
        .into_iter()
        .collect();
    engine
        .configure_installation(TENANT, "text-expand", expand)
        .await
        .unwrap();
    let node = StateNode::attach(&engine, StateNodeConfig::new(nats.url()))
        .await
        .unwrap();
    engine.start();
    let mut config = WorkerConfig::new(nats.url(), dir.path().join("worker"));
    config.ack_wait = Duration::from_secs(2);
    let worker = Worker::start(config).await.unwrap();

    let data = serde_json::json!({ "content": "A short text." })
        .to_string()
        .into_bytes();
    let input = engine
        .create_blob(TENANT, "text-input-v1", data, vec![])
        .await
        .unwrap();
    assert!(engine.wait_idle(SETTLE).await);

    let expanded = engine
        .store()
        .children(TENANT, input.id)
        .unwrap()
        .into_iter()
        .find(|b| {
            b.producer
                .as_ref()
                .is_some_and(|p| p.plugin == "text-expand")
        })
        .expect("text-expand ran on the worker");
    let doc: serde_json::Value = serde_json::from_slice(
        &engine
            .store()
            .get_blob_data(TENANT, expanded.id)
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(doc["expanded"], "A longer text, written by a model.");
    let calls = &expanded.producer.as_ref().unwrap().effect_calls;
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(
        (
            calls[0].effect.as_str(),
            calls[0].outcome.to_string().as_str()
        ),
        ("llm", "ok")
    );
    assert_eq!(
        chat.received().len(),
        1,
        "one request, made by the state node"
    );
    let stats = worker.shutdown().await;
    assert!(stats.completed >= 2, "{stats:?}");
    engine.shutdown().await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_inputs_and_results_go_by_request_reply_and_the_object_store() {
    // Inputs over `inline-max` (64 KiB here) are fetched by the worker; an
    // expanded text over the server's 1 MiB max_payload goes through the
    // results bucket, and word-stats then fetches it in several chunks.
    // text-input-v1 holds at most 50,000 characters: three-byte ones make
    // an input of 120 KB, expanded ten times.
    let dir = tempfile::tempdir().unwrap();
    let inputs: Vec<String> = (0..2)
        .map(|i| format!("Large input {i}. {}", "語彙数 ".repeat(12_000)))
        .collect();
    assert!(
        inputs
            .iter()
            .all(|t| t.chars().count() <= 50_000 && t.len() > 64 * 1024)
    );
    let ratio = |engine: Engine| async move {
        let config = [("expansion_ratio".to_owned(), "10".to_owned())]
            .into_iter()
            .collect();
        engine
            .configure_installation(TENANT, "text-expand", config)
            .await
            .unwrap();
        engine
    };
    let reference_engine = ratio(open(&dir.path().join("embedded")).await).await;
    reference_engine.start();
    ingest(&reference_engine, &inputs).await;
    assert!(reference_engine.wait_idle(SETTLE).await);
    reference_engine.shutdown().await;
    let expected = (
        lineage(&reference_engine),
        reference_engine.store().counts().unwrap(),
    );
    let largest = reference_engine
        .store()
        .list_blobs(TENANT, Some("expanded-text-v1"), None, 10)
        .unwrap()
        .items
        .iter()
        .map(|b| b.size)
        .max()
        .unwrap();
    assert!(
        largest > 1024 * 1024,
        "the expanded text must exceed max_payload: {largest}"
    );

    std::fs::create_dir_all(dir.path().join("nats")).unwrap();
    let nats = NatsServer::start(&dir.path().join("nats")).unwrap();
    let state = open_with(&dir.path().join("state"), |c| {
        c.remote.inline_max = 64 * 1024
    })
    .await;
    let engine = ratio(state).await;
    let node = StateNode::attach(&engine, StateNodeConfig::new(nats.url()))
        .await
        .unwrap();
    engine.start();
    let mut config = WorkerConfig::new(nats.url(), dir.path().join("worker"));
    config.ack_wait = Duration::from_secs(5);
    let worker = Worker::start(config).await.unwrap();
    ingest(&engine, &inputs).await;
    assert!(engine.wait_idle(SETTLE).await);
    assert_same_as_reference(&engine, &expected, "large payloads");
    let stats = worker.shutdown().await;
    assert_eq!(stats.completed, 6, "{stats:?}");
    engine.shutdown().await;
    node.shutdown().await;
}
