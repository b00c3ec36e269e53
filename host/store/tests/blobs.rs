//! Reading blobs: pagination, tenant isolation, events, and the digest check.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a failure stops the test"
)]

mod common;

use std::collections::HashSet;

use common::*;
use reyna_store::{BlobId, StoreError};

#[tokio::test]
async fn list_blobs_pages_through_everything_once_in_order() {
    let (_dir, store) = open();
    let mut created = Vec::new();
    for i in 0..25u32 {
        let schema = if i % 2 == 0 { "even-v1" } else { "odd-v1" };
        created.push(
            store
                .create_blob(new_blob(schema, &i.to_be_bytes()), vec![])
                .await
                .unwrap(),
        );
    }
    let mut other = new_blob("even-v1", b"not yours");
    other.tenant = "globex".to_owned();
    store.create_blob(other, vec![]).await.unwrap();

    // All of the tenant's blobs, 4 per page.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store
            .list_blobs(TENANT, None, cursor.as_deref(), 4)
            .unwrap();
        assert!(page.items.len() <= 4);
        seen.extend(page.items.iter().map(|m| m.id));
        pages += 1;
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, 7);
    assert_eq!(seen.len(), 25);
    assert_eq!(
        seen.iter().collect::<HashSet<_>>().len(),
        25,
        "no blob twice"
    );
    let mut expected: Vec<(u64, BlobId)> = created.iter().map(|m| (m.created_at, m.id)).collect();
    expected.sort();
    assert_eq!(
        seen,
        expected.iter().map(|e| e.1).collect::<Vec<_>>(),
        "oldest first"
    );

    // One schema only.
    let mut even = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .list_blobs(TENANT, Some("even-v1"), cursor.as_deref(), 5)
            .unwrap();
        assert!(
            page.items
                .iter()
                .all(|m| m.schema == "even-v1" && m.tenant == TENANT)
        );
        even.extend(page.items.iter().map(|m| m.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(even.len(), 13);

    // An exact multiple of the page size ends without an empty extra page.
    let page = store.list_blobs(TENANT, Some("odd-v1"), None, 12).unwrap();
    assert_eq!((page.items.len(), page.next_cursor), (12, None));
    assert!(
        store
            .list_blobs("nobody", None, None, 10)
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn a_bad_cursor_is_refused() {
    let (_dir, store) = open();
    store
        .create_blob(new_blob("a-v1", b"1"), vec![])
        .await
        .unwrap();
    for bad in [
        "",
        "nope",
        "zz00000000000000000000000000000000000000000000000",
        "ü",
    ] {
        let err = store.list_blobs(TENANT, None, Some(bad), 10).unwrap_err();
        assert!(matches!(err, StoreError::BadCursor), "{bad}: {err}");
        assert_eq!(err.to_string(), "invalid cursor");
    }
    let err = store.list_dead_letters(None, Some("x"), 10).unwrap_err();
    assert!(matches!(err, StoreError::BadCursor), "{err}");
}

#[tokio::test]
async fn events_are_sequenced_and_tenant_scoped() {
    let (_dir, store) = open();
    let mut watch = store.watch_events();
    assert_eq!(*watch.borrow_and_update(), 0);
    for i in 0..5u8 {
        let mut blob = new_blob("a-v1", &[i]);
        if i % 2 == 1 {
            blob.tenant = "globex".to_owned();
        }
        store.create_blob(blob, vec![]).await.unwrap();
    }
    assert!(watch.has_changed().unwrap());
    assert_eq!(*watch.borrow_and_update(), 5);

    let all = store.events_after(None, 0, 100).unwrap();
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    let mine = store.events_after(Some(TENANT), 0, 100).unwrap();
    assert_eq!(mine.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 3, 5]);
    let resumed = store.events_after(Some(TENANT), 3, 100).unwrap();
    assert_eq!(resumed.iter().map(|e| e.seq).collect::<Vec<_>>(), [5]);
    assert_eq!(store.events_after(None, 1, 2).unwrap().len(), 2);
}

#[tokio::test]
async fn a_corrupted_payload_is_reported_not_returned() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reyna.redb");
    let store = reyna_store::Store::open(&path).unwrap();
    let good = store
        .create_blob(new_blob("a-v1", b"good bytes"), vec![])
        .await
        .unwrap();
    let bad = store
        .create_blob(new_blob("a-v1", b"original"), vec![])
        .await
        .unwrap();
    drop(store);

    // Flip the stored bytes behind the store's back, through redb.
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            // Payloads are stored as (blob id, chunk index) -> bytes.
            let mut data = txn
                .open_table(redb::TableDefinition::<(u128, u32), &[u8]>::new(
                    "blob_data",
                ))
                .unwrap();
            data.insert((bad.id.key(), 0), b"0riginal".as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
    }

    let store = reyna_store::Store::open(&path).unwrap();
    let err = store.get_blob_data(TENANT, bad.id).unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt { id } if id == bad.id),
        "{err}"
    );
    assert!(err.to_string().contains("corrupt"), "{err}");
    assert_eq!(
        store.get_blob_data(TENANT, good.id).unwrap().unwrap(),
        b"good bytes"
    );
    // Metadata stays readable, and the full check names the blob.
    assert!(store.get_blob(TENANT, bad.id).unwrap().is_some());
    let report = store.check().unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].contains(&bad.id.to_string()));
    // Another tenant still reads nothing, not an error.
    assert_eq!(store.get_blob_data("globex", bad.id).unwrap(), None);
}

#[tokio::test]
async fn payloads_of_any_size_round_trip_and_a_missing_chunk_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reyna.redb");
    let store = reyna_store::Store::open(&path).unwrap();
    // Around the 16 KiB chunk boundary, and well past it.
    let sizes = [0usize, 1, 16_319, 16_320, 16_321, 65_536, 300_000];
    let mut stored = Vec::new();
    for size in sizes {
        let data: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
        let meta = store
            .create_blob(new_blob("a-v1", &data), vec![])
            .await
            .unwrap();
        assert_eq!(store.get_blob_data(TENANT, meta.id).unwrap().unwrap(), data);
        stored.push(meta);
    }
    assert_consistent(&store);
    drop(store);

    let big = stored.last().unwrap().id;
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut data = txn
                .open_table(redb::TableDefinition::<(u128, u32), &[u8]>::new(
                    "blob_data",
                ))
                .unwrap();
            data.remove((big.key(), 1)).unwrap().unwrap();
        }
        txn.commit().unwrap();
    }
    let store = reyna_store::Store::open(&path).unwrap();
    let err = store.get_blob_data(TENANT, big).unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt { id } if id == big),
        "{err}"
    );
    let report = store.check().unwrap();
    assert_eq!(report.problems.len(), 2, "{:?}", report.problems);
}
