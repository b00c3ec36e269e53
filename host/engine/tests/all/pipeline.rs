//! The example plugins end to end: routing, chains and fan-in.

use reyna_engine::reyna_store::{Direction, JobState};
use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_flows_through_expand_and_stats_and_the_expansion_is_measured_again() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    for name in ["llm", "text-expand", "word-stats"] {
        upload(&engine, name).await;
    }
    engine.start();
    let input = put(
        &engine,
        "text-input-v1",
        json!({ "content": "Reyna runs plugins. They are sandboxed." }),
    )
    .await;
    idle(&engine).await;

    let expanded = child_by_plugin(&engine, input.id, "text-expand");
    assert_eq!(expanded.schema, "expanded-text-v1");
    assert_eq!(expanded.parents, vec![input.id]);
    assert_eq!(expanded.hop, 1);
    let producer = expanded.producer.as_ref().unwrap();
    assert_eq!(
        (producer.plugin.as_str(), producer.version.as_str()),
        ("text-expand", "2.0.0")
    );
    assert!(producer.component_digest.to_string().starts_with("sha256:"));
    assert!(producer.cost.wall_us > 0 && producer.cost.bytes_in > 0 && producer.cost.outputs == 1);
    let text = json(&engine, expanded.id);
    assert_eq!(text["method"], "deterministic");
    assert_eq!(text["original"], "Reyna runs plugins. They are sandboxed.");
    // The default ratio is 4: at least 24 words from 6.
    let expanded_words = text["expanded"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .count();
    assert!(expanded_words >= 24, "{text}");
    assert_eq!(text["expansion_ratio"], expanded_words as f64 / 6.0);
    assert_eq!(text["metrics"]["tone"], "neutral");

    let stats = child_by_plugin(&engine, input.id, "word-stats");
    assert_eq!(json(&engine, stats.id)["words"], 6);
    // The expansion is itself routed to word-stats: a chain of two hops.
    let stats_of_expansion = child_by_plugin(&engine, expanded.id, "word-stats");
    assert_eq!(stats_of_expansion.hop, 2);
    let measured = json(&engine, stats_of_expansion.id);
    assert_eq!(measured["source_schema"], "expanded-text-v1");
    assert_eq!(measured["words"], expanded_words);
    assert_eq!(
        measured["flesch_reading_ease"],
        text["metrics"]["readability_score"]
    );

    let lineage = engine
        .store()
        .lineage(TENANT, input.id, Direction::Down, 5)
        .unwrap()
        .unwrap();
    assert_eq!(lineage.nodes.len(), 4, "{lineage:?}");
    assert_eq!(lineage.edges.len(), 3);
    let counts = engine.store().counts().unwrap();
    assert_eq!((counts.jobs_done, counts.dead_letters), (3, 0));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_chapters_fan_in_to_one_book_with_every_chapter_as_parent() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    upload(&engine, "book-compile").await;
    engine.start();
    let mut chapters = Vec::new();
    for i in 0..4 {
        let c = put(&engine, "chapter-v1", json!({ "book_id": "b1", "index": i, "title": format!("Part {i}"), "text": "Some words here." })).await;
        chapters.push(c.id);
    }
    let request = put(
        &engine,
        "book-compile-request-v1",
        json!({ "book_id": "b1", "title": "The Book", "expected_chapters": 4 }),
    )
    .await;
    idle(&engine).await;

    let book = child_by_plugin(&engine, request.id, "book-compile");
    assert_eq!(book.schema, "compiled-book-v1");
    let mut expected = vec![request.id];
    expected.extend(&chapters);
    assert_eq!(
        book.parents, expected,
        "the request, then the chapters in order"
    );
    let doc = json(&engine, book.id);
    assert_eq!(doc["words"], 12);
    assert_eq!(doc["chapters"].as_array().unwrap().len(), 4);
    let up = engine
        .store()
        .lineage(TENANT, book.id, Direction::Up, 1)
        .unwrap()
        .unwrap();
    assert_eq!(up.nodes.len(), 6, "the book, the request and four chapters");
    assert_eq!(up.edges.len(), 4 + 1);
    // Each chapter lists the book among its children.
    for c in &chapters {
        assert!(children(&engine, *c).iter().any(|b| b.id == book.id));
    }
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chapter_texts_expand_into_chapters_that_compile_into_a_book() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    for name in ["llm", "text-expand", "book-compile"] {
        upload(&engine, name).await;
    }
    engine.start();
    // Chapter 2 first: the book orders chapters by their number.
    let mut inputs = Vec::new();
    for (chapter, content) in [
        (2, "The storm broke at dawn."),
        (1, "It was a quiet night."),
    ] {
        let metadata = json!({ "book_id": "b1", "chapter": chapter, "style": "creative" });
        let input = put(
            &engine,
            "text-input-v1",
            json!({ "content": content, "metadata": metadata }),
        )
        .await;
        inputs.push((chapter, input.id));
    }
    idle(&engine).await;
    let mut chapters = Vec::new();
    for &(chapter, input) in &inputs {
        let mut outputs = children(&engine, input);
        outputs.sort_by(|a, b| a.schema.cmp(&b.schema));
        let schemas: Vec<&str> = outputs.iter().map(|o| o.schema.as_str()).collect();
        assert_eq!(schemas, ["chapter-v1", "expanded-text-v1"]);
        let expanded = json(&engine, outputs[1].id);
        assert_eq!(expanded["metadata"]["chapter"], chapter);
        assert_eq!(expanded["metrics"]["tone"], "creative");
        assert_eq!(
            json(&engine, outputs[0].id),
            json!({
                "book_id": "b1",
                "index": chapter,
                "title": format!("Chapter {chapter}"),
                "text": expanded["expanded"],
            })
        );
        assert_eq!(outputs[0].parents, [input]);
        chapters.push((chapter, outputs[0].id));
    }
    chapters.sort();
    let request = put(
        &engine,
        "book-compile-request-v1",
        json!({ "book_id": "b1", "title": "Two Nights", "expected_chapters": 2 }),
    )
    .await;
    idle(&engine).await;

    let book = child_by_plugin(&engine, request.id, "book-compile");
    assert_eq!(book.schema, "compiled-book-v1");
    assert_eq!(book.parents, [request.id, chapters[0].1, chapters[1].1]);
    let doc = json(&engine, book.id);
    let order: Vec<(u64, &str)> = doc["chapters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["index"].as_u64().unwrap(), c["title"].as_str().unwrap()))
        .collect();
    assert_eq!(order, [(1, "Chapter 1"), (2, "Chapter 2")]);
    let text = doc["text"].as_str().unwrap();
    assert!(
        text.starts_with("# Two Nights\n\n## Chapter 1\n\nIt was a quiet night."),
        "{text}"
    );
    // The book's lineage reaches back to both text inputs.
    let up = engine
        .store()
        .lineage(TENANT, book.id, Direction::Up, 3)
        .unwrap()
        .unwrap();
    for (_, input) in &inputs {
        assert!(up.nodes.iter().any(|n| n.id == *input), "{up:?}");
    }
    assert_eq!(
        up.nodes.len(),
        6,
        "the book, the request, two chapters, two inputs"
    );
    let counts = engine.store().counts().unwrap();
    assert_eq!(counts.dead_letters, 0);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_only_receives_its_declared_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    upload(&engine, "word-count").await;
    engine.start();
    let chapter = put(
        &engine,
        "chapter-v1",
        json!({ "book_id": "b", "index": 0, "title": "t", "text": "x y" }),
    )
    .await;
    let text = put(
        &engine,
        "text-input-v1",
        json!({ "content": "xxx yyy zzz" }),
    )
    .await;
    idle(&engine).await;
    assert!(children(&engine, chapter.id).is_empty());
    assert_eq!(
        json(&engine, child_by_plugin(&engine, text.id, "word-count").id)["words"],
        3
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_with_a_free_worker_is_claimed_in_the_commit_that_creates_it() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    upload(&engine, "word-stats").await;

    // Not started: the job waits in the store, as before.
    let early = put(
        &engine,
        "text-input-v1",
        json!({ "content": "one and two" }),
    )
    .await;
    let jobs = engine.store().jobs_for_blob(TENANT, early.id).unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].state, JobState::Pending);
    engine.start();
    idle(&engine).await;

    // Started, with free workers: never pending, no claim of its own.
    let before = engine.store().writer_stats().ops;
    let input = put(
        &engine,
        "text-input-v1",
        json!({ "content": "three four five" }),
    )
    .await;
    let jobs = engine.store().jobs_for_blob(TENANT, input.id).unwrap();
    assert_eq!(jobs.len(), 1);
    assert!(
        matches!(jobs[0].state, JobState::Running | JobState::Done),
        "{:?}",
        jobs[0].state
    );
    idle(&engine).await;
    assert_eq!(
        json(&engine, child_by_plugin(&engine, input.id, "word-stats").id)["words"],
        3
    );
    // One write for the blob with its claimed job, one for the completion.
    assert_eq!(engine.store().writer_stats().ops - before, 2);
    assert!(engine.store().check().unwrap().problems.is_empty());
}
