//! A tenant's quotas on what it holds (checked in the transaction that
//! would pass them), its metered usage, weighted and capped claims, and the
//! budget warnings usage announces.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a failure stops the test"
)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use reyna_store::{
    ClaimPolicy, Cost, FailedRun, Granularity, IngestLimits, Metric, NewBlob, StoreError, Usage,
    Window, WindowLimit,
};

fn blob_of(tenant: &str, data: &[u8]) -> NewBlob {
    NewBlob {
        tenant: tenant.to_owned(),
        ..new_blob("text-input-v1", data)
    }
}

#[tokio::test]
async fn a_blob_past_the_stored_bytes_or_queued_jobs_quota_is_refused_and_nothing_is_stored() {
    let (_dir, store) = open();
    let limits = IngestLimits {
        stored_bytes: Some(10),
        queued_jobs: Some(2),
    };
    let jobs = || vec![spec("expand", "text-input-v1")];
    store
        .create_blob_and_claim(new_blob("text-input-v1", b"1234"), jobs(), 0, limits, false)
        .await
        .unwrap();
    // 4 + 7 > 10 bytes.
    let refused = store
        .create_blob_and_claim(
            new_blob("text-input-v1", b"1234567"),
            jobs(),
            0,
            limits,
            false,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            StoreError::QuotaExceeded {
                quota: "stored-bytes",
                used: 4,
                adding: 7,
                limit: 10
            }
        ),
        "{refused:?}"
    );
    store
        .create_blob_and_claim(new_blob("text-input-v1", b"12"), jobs(), 0, limits, false)
        .await
        .unwrap();
    // Two jobs wait: a third would pass the queue quota, unless it is claimed at once.
    let refused = store
        .create_blob_and_claim(new_blob("text-input-v1", b"1"), jobs(), 0, limits, false)
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            StoreError::QuotaExceeded {
                quota: "queued-jobs",
                used: 2,
                ..
            }
        ),
        "{refused:?}"
    );
    assert_eq!(store.counts().unwrap().blobs, 2);
    let held = store.holdings(TENANT).unwrap();
    assert_eq!((held.stored_bytes, held.queued_jobs), (6, 2));
    // Another tenant's holdings are its own.
    store
        .create_blob_and_claim(blob_of("other", b"1234567"), jobs(), 0, limits, false)
        .await
        .unwrap();
    // Claiming a job frees a place in the queue.
    let claimed = store.claim_due_jobs(LATER, 1, None).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let tenant = claimed[0].tenant.clone();
    store
        .create_blob_and_claim(blob_of(&tenant, b"1"), jobs(), 0, limits, false)
        .await
        .unwrap();
    assert_consistent(&store);
}

#[tokio::test]
async fn usage_counts_exactly_the_blobs_runs_and_costs_of_each_hour_day_and_month() {
    let (_dir, store) = open();
    for data in [&b"abc"[..], b"defgh"] {
        store
            .create_blob(
                new_blob("text-input-v1", data),
                vec![spec("expand", "text-input-v1")],
            )
            .await
            .unwrap();
    }
    let jobs = store.claim_due_jobs(LATER, 10, None).await.unwrap();
    let cost = Cost {
        wall_us: 1500,
        cpu_us: 700,
        epoch_ticks: 3,
        fuel: Some(10),
        peak_memory: 65536,
        bytes_in: 3,
        bytes_out: 4,
        outputs: 1,
    };
    let mut done = completion(vec![output("stats-v1", b"{\"n\":1}")]);
    done.cost = cost;
    store.complete_job(jobs[0].id, done).await.unwrap();
    let failed = FailedRun {
        reason: "fatal: no".into(),
        retry_at: None,
        cost: Cost {
            peak_memory: 131_072,
            ..cost
        },
        log: Default::default(),
    };
    store.fail_job(jobs[1].id, failed).await.unwrap();
    let effect = Usage {
        effect_calls: 2,
        units: [("tokens".to_owned(), 42)].into(),
        ..Usage::default()
    };
    store
        .record_usage(TENANT, effect, Vec::new())
        .await
        .unwrap();

    let now = store.now_ms();
    let expected = Usage {
        blobs_created: 2,
        blobs_derived: 1,
        bytes_stored: 3 + 5 + 7,
        jobs_run: 2,
        jobs_failed: 1,
        wall_us: 3000,
        cpu_us: 1400,
        epoch_ticks: 6,
        fuel: 20,
        peak_memory: 131_072,
        bytes_in: 6,
        bytes_out: 8,
        effect_calls: 2,
        units: [("tokens".to_owned(), 42)].into(),
    };
    for granularity in Granularity::ALL {
        let periods = store.usage(TENANT, granularity, 0, u64::MAX).unwrap();
        assert_eq!(periods.len(), 1, "{granularity:?}");
        assert_eq!(periods[0].usage, expected, "{granularity:?}");
        assert_eq!(periods[0].start, granularity.start(now));
        assert_eq!(store.usage_at(TENANT, granularity, now).unwrap(), expected);
    }
    assert!(
        store
            .usage("other", Granularity::Hour, 0, u64::MAX)
            .unwrap()
            .is_empty()
    );

    // An hour later, a new hour but the same day.
    store.clock().advance(Duration::from_secs(3600));
    store
        .create_blob(new_blob("text-input-v1", b"x"), vec![])
        .await
        .unwrap();
    let hours = store.usage(TENANT, Granularity::Hour, 0, u64::MAX).unwrap();
    assert_eq!(hours.len(), 2);
    assert_eq!(hours[1].usage.blobs_created, 1);
    assert_eq!(hours[1].start, hours[0].end);
    let days = store.usage(TENANT, Granularity::Day, 0, u64::MAX).unwrap();
    let in_day = days.iter().map(|d| d.usage.blobs_created).sum::<u64>();
    assert_eq!(in_day, 3);
    // `to` is exclusive, `from` rounds down to its period.
    let first = store
        .usage(
            TENANT,
            Granularity::Hour,
            hours[0].start + 1,
            hours[1].start,
        )
        .unwrap();
    assert_eq!(first.len(), 1);
    assert_consistent(&store);
}

#[tokio::test]
async fn claims_give_each_tenant_its_weight_per_turn_and_none_past_its_cap() {
    let (_dir, store) = open();
    for tenant in ["a", "b", "c"] {
        for i in 0..6u8 {
            store
                .create_blob(blob_of(tenant, &[i]), vec![spec("p", "text-input-v1")])
                .await
                .unwrap();
        }
    }
    let policy = |after| ClaimPolicy {
        after,
        weights: HashMap::from([("a".to_owned(), 2)]),
        caps: HashMap::from([("c".to_owned(), 1)]),
        default_cap: None,
    };
    // a twice, b once, c once (then capped), a twice, b once, ...
    let (first, cursor) = store
        .claim_due_jobs_fairly(LATER, 3, policy(None))
        .await
        .unwrap();
    let order: Vec<&str> = first.iter().map(|j| j.tenant.as_str()).collect();
    assert_eq!(order, ["a", "a", "b"]);
    let (second, cursor) = store
        .claim_due_jobs_fairly(LATER, 5, policy(cursor))
        .await
        .unwrap();
    let order: Vec<&str> = second.iter().map(|j| j.tenant.as_str()).collect();
    assert_eq!(order, ["c", "a", "a", "b", "a"]);
    // The cursor keeps what was left of a's turn: one more a, then b.
    let (third, _) = store
        .claim_due_jobs_fairly(LATER, 2, policy(cursor))
        .await
        .unwrap();
    let order: Vec<&str> = third.iter().map(|j| j.tenant.as_str()).collect();
    assert_eq!(order, ["a", "b"]);
    assert_consistent(&store);
}

#[tokio::test]
async fn usage_announces_80_percent_and_100_percent_of_a_budget_once_each() {
    let (_dir, store) = open();
    let limits = vec![WindowLimit {
        metric: Metric::Unit("tokens".into()),
        window: Window::Day,
        limit: 100,
    }];
    let tokens = |n| Usage {
        units: [("tokens".to_owned(), n)].into(),
        ..Usage::default()
    };
    let crossed = |c: Vec<reyna_store::LimitCrossing>| -> Vec<(bool, u64)> {
        c.iter().map(|c| (c.exhausted, c.used)).collect()
    };
    let r = store
        .record_usage(TENANT, tokens(79), limits.clone())
        .await
        .unwrap();
    assert!(r.is_empty());
    let r = store
        .record_usage(TENANT, tokens(1), limits.clone())
        .await
        .unwrap();
    assert_eq!(crossed(r), [(false, 80)]);
    let r = store
        .record_usage(TENANT, tokens(19), limits.clone())
        .await
        .unwrap();
    assert!(r.is_empty());
    let r = store
        .record_usage(TENANT, tokens(5), limits.clone())
        .await
        .unwrap();
    assert_eq!(crossed(r), [(true, 104)]);
    let r = store
        .record_usage(TENANT, tokens(5), limits.clone())
        .await
        .unwrap();
    assert!(r.is_empty());
    let subjects: Vec<String> = store
        .events_after(Some(TENANT), 0, 10)
        .unwrap()
        .into_iter()
        .map(|e| e.subject)
        .collect();
    assert_eq!(
        subjects,
        ["tenant.budget.warning", "tenant.budget.exhausted"]
    );
    let audit = store.list_audit(0, 10, Some(TENANT)).unwrap();
    let actions: Vec<(&str, &str)> = audit
        .iter()
        .map(|a| (a.action.as_str(), a.target.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("budget.warning", "budget:tokens:day"),
            ("budget.exhausted", "budget:tokens:day")
        ]
    );
    assert!(
        audit[1]
            .detail
            .starts_with("104 of 100 `tokens` this day; resets at "),
        "{}",
        audit[1].detail
    );

    // The next day the window starts over: a jump from 0 past 100% warns and exhausts at once.
    store.clock().advance(Duration::from_secs(86_400));
    let r = store
        .record_usage(TENANT, tokens(150), limits)
        .await
        .unwrap();
    assert_eq!(crossed(r), [(false, 150), (true, 150)]);
}

#[tokio::test]
async fn an_idle_tenants_job_is_claimed_at_once_while_another_tenants_backlog_waits() {
    let (_dir, store) = open();
    let job = || vec![spec("p", "text-input-v1")];
    for i in 0..5u8 {
        store
            .create_blob(blob_of("busy", &[i]), job())
            .await
            .unwrap();
    }
    let limits = IngestLimits::default();
    // Not idle (the caller has jobs of it claimed): it queues behind.
    let (_, claimed) = store
        .create_blob_and_claim(blob_of("quiet", b"1"), job(), 1, limits, false)
        .await
        .unwrap();
    assert!(claimed.is_empty());
    // Idle, but with a job of its own due: that one goes first, this waits.
    let (_, claimed) = store
        .create_blob_and_claim(blob_of("quiet", b"2"), job(), 1, limits, true)
        .await
        .unwrap();
    assert!(claimed.is_empty());
    let (taken, _) = store
        .claim_due_jobs_fairly(LATER, 10, ClaimPolicy::default())
        .await
        .unwrap();
    assert_eq!(taken.len(), 7);
    for i in 0..5u8 {
        store
            .create_blob(blob_of("busy", &[10 + i]), job())
            .await
            .unwrap();
    }
    // Idle and nothing due: claimed in its own commit, ahead of busy's five.
    let (_, claimed) = store
        .create_blob_and_claim(blob_of("quiet", b"3"), job(), 1, limits, true)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].tenant, "quiet");
    assert_eq!(store.holdings("busy").unwrap().queued_jobs, 5);
    assert_consistent(&store);
}
