//! One suite for both transports: the in-process bus must behave like NATS for everything the
//! services rely on (wildcards, queue groups, request-reply, no responders, timeouts).

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use moolai_bus::{Bus, BusError, Kind, Subjects};

const T: Duration = Duration::from_secs(5);

fn subjects() -> Subjects {
    Subjects::new(&format!("conf{}", uuid::Uuid::new_v4().simple())).expect("prefix")
}

/// Two handles on one bus, as two processes would have.
async fn nats_pair() -> (Bus, Bus) {
    let url =
        std::env::var("MOOLAI_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let s = subjects();
    let a = Bus::connect(&url, s.clone(), "conf-a").await.expect("nats");
    let b = Bus::connect(&url, s, "conf-b").await.expect("nats");
    (a, b)
}

fn local_pair() -> (Bus, Bus) {
    let a = Bus::in_process(subjects());
    (a.clone(), a)
}

async fn wildcards_and_tenants(a: Bus, b: Bus) {
    let s = a.subjects().clone();
    let mut all = b.subscribe(s.all(Kind::Status)).await.expect("sub");
    let mut org1 = b
        .subscribe(s.organization(Kind::Status, "org1"))
        .await
        .expect("sub");
    b.flush().await.expect("flush");
    a.publish(s.orchestrator(Kind::Status, "org1", "o1"), &1)
        .await
        .expect("pub");
    a.publish(s.orchestrator(Kind::Status, "org2", "o2"), &2)
        .await
        .expect("pub");
    a.publish(s.orchestrator(Kind::Heartbeat, "org1", "o1"), &3)
        .await
        .expect("pub");
    a.flush().await.expect("flush");
    let first: i32 = tokio::time::timeout(T, all.next())
        .await
        .expect("t")
        .expect("m")
        .json()
        .expect("j");
    let second: i32 = tokio::time::timeout(T, all.next())
        .await
        .expect("t")
        .expect("m")
        .json()
        .expect("j");
    assert_eq!((first, second), (1, 2));
    let only: i32 = tokio::time::timeout(T, org1.next())
        .await
        .expect("t")
        .expect("m")
        .json()
        .expect("j");
    assert_eq!(only, 1);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), org1.next())
            .await
            .is_err(),
        "org2 leaked into org1's subscription"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(200), all.next())
            .await
            .is_err(),
        "heartbeat leaked into status"
    );
}

async fn queue_group_delivers_each_message_once(a: Bus, b: Bus) {
    let s = a.subjects().clone();
    let subject = s.all(Kind::Heartbeat);
    let mut m1 = a.queue_subscribe(subject.clone(), "g").await.expect("sub");
    let mut m2 = b.queue_subscribe(subject, "g").await.expect("sub");
    a.flush().await.expect("flush");
    b.flush().await.expect("flush");
    for i in 0..200 {
        a.publish(s.orchestrator(Kind::Heartbeat, "o", &format!("x{i}")), &i)
            .await
            .expect("pub");
    }
    a.flush().await.expect("flush");
    let mut seen = HashSet::new();
    let (mut n1, mut n2) = (0, 0);
    while seen.len() < 200 {
        tokio::select! {
            Some(d) = m1.next() => { n1 += 1; assert!(seen.insert(d.json::<i32>().expect("j")), "duplicate"); }
            Some(d) = m2.next() => { n2 += 1; assert!(seen.insert(d.json::<i32>().expect("j")), "duplicate"); }
            () = tokio::time::sleep(T) => panic!("only {} of 200 delivered", seen.len()),
        }
    }
    assert_eq!(n1 + n2, 200);
    assert!(n1 > 0 && n2 > 0, "one member got everything: {n1}/{n2}");
}

async fn request_reply_no_responders_and_timeout(a: Bus, b: Bus) {
    let s = a.subjects().clone();
    let err = a
        .request::<_, i32>(s.hello(), &1, T)
        .await
        .expect_err("nobody listens");
    assert!(matches!(err, BusError::NoResponders { .. }), "{err:?}");

    let mut hellos = b.queue_subscribe(s.hello(), "state").await.expect("sub");
    b.flush().await.expect("flush");
    let responder = b.clone();
    let task = tokio::spawn(async move {
        // Answer the first, ignore the second.
        let d = hellos.next().await.expect("request");
        let n: i32 = d.json().expect("j");
        responder.respond(&d, &(n * 10)).await.expect("respond");
        let _ignored = hellos.next().await;
    });
    let answer: i32 = a.request(s.hello(), &7, T).await.expect("answer");
    assert_eq!(answer, 70);
    let err = a
        .request::<_, i32>(s.hello(), &8, Duration::from_millis(300))
        .await
        .expect_err("no answer");
    assert!(matches!(err, BusError::Timeout { .. }), "{err:?}");
    task.abort();
}

#[tokio::test]
async fn nats_wildcards_and_tenants() {
    let (a, b) = nats_pair().await;
    wildcards_and_tenants(a, b).await;
}
#[tokio::test]
async fn local_wildcards_and_tenants() {
    let (a, b) = local_pair();
    wildcards_and_tenants(a, b).await;
}
#[tokio::test]
async fn nats_queue_group() {
    let (a, b) = nats_pair().await;
    queue_group_delivers_each_message_once(a, b).await;
}
#[tokio::test]
async fn local_queue_group() {
    let (a, b) = local_pair();
    queue_group_delivers_each_message_once(a, b).await;
}
#[tokio::test]
async fn nats_request_reply() {
    let (a, b) = nats_pair().await;
    request_reply_no_responders_and_timeout(a, b).await;
}
#[tokio::test]
async fn local_request_reply() {
    let (a, b) = local_pair();
    request_reply_no_responders_and_timeout(a, b).await;
}
