//! Lineage graphs: a chain, a fan-in, depth limits and tenant isolation.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a failure stops the test"
)]

mod common;

use common::*;
use reyna_store::{BlobId, BlobMeta, Direction, Edge, Store};

/// Completes `input`'s job for `plugin` with one output that gets a `next` job.
async fn derive(
    store: &Store,
    input: &BlobMeta,
    plugin: &str,
    schema: &str,
    extra: Vec<BlobId>,
) -> BlobMeta {
    let job = store
        .jobs_for_blob(TENANT, input.id)
        .unwrap()
        .into_iter()
        .find(|j| j.plugin == plugin)
        .unwrap();
    let mut out = output(schema, format!("{plugin}({})", input.id).as_bytes());
    out.extra_parents = extra;
    let mut c = completion(vec![out]);
    c.next_jobs = vec![vec![spec("next", schema)]];
    store.complete_job(job.id, c).await.unwrap().remove(0)
}

fn node_ids(l: &reyna_store::Lineage) -> Vec<BlobId> {
    let mut ids: Vec<BlobId> = l.nodes.iter().map(|n| n.id).collect();
    ids.sort();
    ids
}

fn sorted(mut ids: Vec<BlobId>) -> Vec<BlobId> {
    ids.sort();
    ids
}

#[tokio::test]
async fn chain_a_b_c() {
    let (_dir, store) = open();
    let a = store
        .create_blob(new_blob("doc-v1", b"a"), vec![spec("next", "doc-v1")])
        .await
        .unwrap();
    let b = derive(&store, &a, "next", "doc-v1", vec![]).await;
    let c = derive(&store, &b, "next", "doc-v1", vec![]).await;
    assert_eq!((b.hop, c.hop), (1, 2));
    let ab = Edge {
        parent: a.id,
        child: b.id,
    };
    let bc = Edge {
        parent: b.id,
        child: c.id,
    };

    let up = store
        .lineage(TENANT, c.id, Direction::Up, 10)
        .unwrap()
        .unwrap();
    assert_eq!(up.root, c.id);
    assert_eq!(up.nodes[0].id, c.id, "root first");
    assert_eq!(node_ids(&up), sorted(vec![a.id, b.id, c.id]));
    assert_eq!(up.edges, sorted_edges(vec![ab, bc]));
    assert!(!up.truncated);
    // Producer and cost come along with every node.
    let b_node = up.nodes.iter().find(|n| n.id == b.id).unwrap();
    assert_eq!(
        b_node.producer.as_ref().unwrap().job_id,
        b.producer.as_ref().unwrap().job_id
    );

    let up1 = store
        .lineage(TENANT, c.id, Direction::Up, 1)
        .unwrap()
        .unwrap();
    assert_eq!(node_ids(&up1), sorted(vec![b.id, c.id]));
    assert_eq!(up1.edges, vec![bc]);

    let down = store
        .lineage(TENANT, a.id, Direction::Down, 10)
        .unwrap()
        .unwrap();
    assert_eq!(node_ids(&down), sorted(vec![a.id, b.id, c.id]));
    assert_eq!(down.edges, sorted_edges(vec![ab, bc]));

    let both = store
        .lineage(TENANT, b.id, Direction::Both, 1)
        .unwrap()
        .unwrap();
    assert_eq!(node_ids(&both), sorted(vec![a.id, b.id, c.id]));
    assert_eq!(both.edges, sorted_edges(vec![ab, bc]));

    let only = store
        .lineage(TENANT, b.id, Direction::Both, 0)
        .unwrap()
        .unwrap();
    assert_eq!(node_ids(&only), vec![b.id]);
    assert!(only.edges.is_empty());

    // Another tenant sees nothing.
    assert_eq!(
        store.lineage("globex", c.id, Direction::Up, 10).unwrap(),
        None
    );
    assert_eq!(store.get_blob("globex", c.id).unwrap(), None);
    assert_consistent(&store);
}

fn sorted_edges(mut edges: Vec<Edge>) -> Vec<Edge> {
    edges.sort();
    edges
}

#[tokio::test]
async fn fan_in_four_chapters_to_one_book() {
    let (_dir, store) = open();
    let outline = store
        .create_blob(
            new_blob("outline-v1", b"outline"),
            vec![spec("write", "outline-v1")],
        )
        .await
        .unwrap();
    // One job writes four chapters from the outline.
    let job = store.jobs_for_blob(TENANT, outline.id).unwrap().remove(0);
    let mut c = completion(
        (1..=4)
            .map(|i| output("chapter-v1", format!("chapter {i}").as_bytes()))
            .collect(),
    );
    c.next_jobs = vec![vec![spec("compile", "chapter-v1")]; 4];
    let chapters = store.complete_job(job.id, c).await.unwrap();
    assert_eq!(chapters.len(), 4);

    // The compile job of the last chapter queries every chapter (fan-in)
    // and names the others as extra parents.
    let found = store
        .list_blobs(TENANT, Some("chapter-v1"), None, 100)
        .unwrap()
        .items;
    assert_eq!(sorted(ids(&found)), sorted(ids(&chapters)));
    let last = &chapters[3];
    let compile = store.jobs_for_blob(TENANT, last.id).unwrap().remove(0);
    let mut book = output("book-v1", b"the book");
    book.extra_parents = chapters[..3].iter().map(|c| c.id).collect();
    let book = store
        .complete_job(compile.id, completion(vec![book]))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(book.parents.len(), 4);
    assert_eq!(book.parents[0], last.id, "the job's input comes first");
    assert_eq!(book.hop, 2);

    let up = store
        .lineage(TENANT, book.id, Direction::Up, 1)
        .unwrap()
        .unwrap();
    let mut expected = ids(&chapters);
    expected.push(book.id);
    assert_eq!(node_ids(&up), sorted(expected.clone()));
    let edges: Vec<Edge> = chapters
        .iter()
        .map(|c| Edge {
            parent: c.id,
            child: book.id,
        })
        .collect();
    assert_eq!(up.edges, sorted_edges(edges.clone()));

    let up_all = store
        .lineage(TENANT, book.id, Direction::Up, 5)
        .unwrap()
        .unwrap();
    expected.push(outline.id);
    assert_eq!(node_ids(&up_all), sorted(expected));
    assert_eq!(up_all.edges.len(), 8);

    let down = store
        .lineage(TENANT, outline.id, Direction::Down, 5)
        .unwrap()
        .unwrap();
    assert_eq!(down.nodes.len(), 6);
    assert_eq!(down.edges.len(), 8);
    assert_eq!(
        store.children(TENANT, chapters[0].id).unwrap()[0].id,
        book.id
    );
    assert_consistent(&store);
}
