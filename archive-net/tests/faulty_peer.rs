//! A deliberately faulty peer (test-only) against a real client: wrong bytes for a hash,
//! oversized frames, garbage, stalls. Each ends the session with a clear error, stores
//! nothing unverified, and leaves a store that verifies clean.

use std::sync::Arc;
use std::time::Duration;

use archive_core::sync::Reconciler;
use archive_core::{Store, ViewPoint};
use archive_net::wire::{
    encode_frame, read_frame, write_frame, BlobHeader, EntryReply, ReconcileStep, Request,
};
use archive_net::{
    bind_endpoint, connect, Access, Counters, Limits, NetConfig, NetError, Node, PeerPolicy,
    SyncOptions, Trust, ALPN,
};
use iroh::endpoint::{Connection, RecvStream, SendStream};
use iroh::protocol::{AcceptError, ProtocolHandler, Router};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    WrongBlobBytes,
    OversizedFrame,
    Garbage,
    Stall,
    BlobTooLarge,
}

#[derive(Debug, Clone)]
struct Faulty {
    store: Arc<Store>,
    fault: Fault,
}

impl ProtocolHandler for Faulty {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        while let Ok((send, recv)) = conn.accept_bi().await {
            let this = self.clone();
            tokio::spawn(async move {
                let _ = this.answer(send, recv).await;
            });
        }
        Ok(())
    }
}

impl Faulty {
    async fn answer(&self, mut send: SendStream, mut recv: RecvStream) -> Result<(), NetError> {
        let t = Duration::from_secs(5);
        let request: Request = read_frame(&mut recv, 4 << 20, t).await?;
        match (request, self.fault) {
            (Request::Reconcile { .. }, Fault::Stall) => {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
            (Request::Reconcile { .. }, Fault::OversizedFrame) => {
                send.write_all(&u32::MAX.to_le_bytes()).await.unwrap();
                send.write_all(&[0; 1000]).await.unwrap();
            }
            (Request::Reconcile { .. }, Fault::Garbage) => {
                send.write_all(&[9, 0, 0, 0, 0xff, 0xfe, 0xfd, 1, 2, 3, 4, 5, 6])
                    .await
                    .unwrap();
            }
            (Request::Reconcile { frame, .. }, _) => {
                let index = self
                    .store
                    .collection("default")
                    .unwrap()
                    .sync_index()
                    .unwrap();
                let mut r = Reconciler::new(index, Default::default()).unwrap();
                let mut frame = frame;
                loop {
                    match r.receive(&frame).unwrap() {
                        Some(out) => {
                            write_frame(&mut send, &ReconcileStep::Frame(out)).await?;
                            match read_frame(&mut recv, 2 << 20, t).await? {
                                ReconcileStep::Frame(f) => frame = f,
                                _ => {
                                    write_frame(&mut send, &ReconcileStep::Done(None)).await?;
                                    break;
                                }
                            }
                        }
                        None => {
                            write_frame(&mut send, &ReconcileStep::Done(None)).await?;
                            let _: ReconcileStep = read_frame(&mut recv, 2 << 20, t).await?;
                            break;
                        }
                    }
                }
            }
            (Request::GetEntries { keys, .. }, _) => {
                for key in keys {
                    let e = self.store.entry(&key).unwrap().unwrap();
                    write_frame(&mut send, &EntryReply::Entry(e.encoded().to_vec())).await?;
                }
                write_frame(&mut send, &EntryReply::End).await?;
            }
            (Request::GetBlobs { hashes }, fault) => {
                for h in hashes {
                    let (size, mut bytes) = self.store.transfer().encode_blob(&h).unwrap().unwrap();
                    if fault == Fault::BlobTooLarge {
                        write_frame(&mut send, &BlobHeader::Found { size: 1 << 40 }).await?;
                        break;
                    }
                    let mid = bytes.len() / 2;
                    bytes[mid] ^= 0x40;
                    send.write_all(&encode_frame(&BlobHeader::Found { size }))
                        .await
                        .unwrap();
                    send.write_all(&bytes).await.unwrap();
                }
            }
            _ => {}
        }
        let _ = send.finish();
        let _ = tokio::time::timeout(t, send.stopped()).await;
        Ok(())
    }
}

async fn run_against(fault: Fault) -> (NetError, Arc<Store>, tempfile::TempDir) {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let a = Arc::new(Store::init(dir_a.path()).unwrap());
    let b = Arc::new(Store::init(dir_b.path()).unwrap());
    a.collection("default")
        .unwrap()
        .add_bytes("big", &vec![7u8; 300_000])
        .unwrap();
    a.collection("default")
        .unwrap()
        .add_bytes("small", b"tiny")
        .unwrap();
    let config = NetConfig {
        bind: Some("127.0.0.1:0".parse().unwrap()),
        ..NetConfig::default()
    };
    // The faulty server has paired B (its endpoint refuses strangers).
    let trust_a = Trust::default();
    let b_id = iroh::SecretKey::from_bytes(&b.secret_key().to_bytes()).public();
    trust_a.set(b_id, PeerPolicy::default());
    let ep_a = bind_endpoint(a.secret_key(), &config, &trust_a)
        .await
        .unwrap();
    let router = Router::builder(ep_a)
        .accept(
            ALPN,
            Faulty {
                store: a.clone(),
                fault,
            },
        )
        .spawn();
    let trust = Trust::default();
    let ep_b = bind_endpoint(b.secret_key(), &config, &trust)
        .await
        .unwrap();
    trust.set(
        router.endpoint().id(),
        PeerPolicy {
            name: "faulty".into(),
            read: Access::All,
            write: Access::All,
        },
    );
    let limits = Limits {
        timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let node = Node::new(b.clone(), trust, limits);
    let conn = connect(&ep_b, router.endpoint().addr(), Duration::from_secs(5))
        .await
        .unwrap();
    let options = SyncOptions {
        collection: "default".into(),
        pull: true,
        push: false,
    };
    let err = node
        .sync(&conn, &options, Arc::new(Counters::default()))
        .await
        .unwrap_err();
    drop(dir_a);
    (err, b, dir_b)
}

fn assert_untouched(store: &Store) {
    assert!(store
        .collection("default")
        .unwrap()
        .list(ViewPoint::Current, "")
        .unwrap()
        .next()
        .is_none());
    assert_eq!(store.stats().unwrap().entries, 0);
    assert!(store.verify().unwrap().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_bytes_for_a_hash_are_refused() {
    let (err, b, _d) = run_against(Fault::WrongBlobBytes).await;
    assert!(
        matches!(err, NetError::Transfer(_)) && err.to_string().contains("failed verification"),
        "{err}"
    );
    assert_untouched(&b);
    // The wrong blob was not stored (only the good inline one may have been).
    assert!(b.stats().unwrap().stored_bytes < 300_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frames_are_refused() {
    let (err, b, _d) = run_against(Fault::OversizedFrame).await;
    assert!(matches!(err, NetError::FrameTooLarge { .. }), "{err}");
    assert_untouched(&b);
    let (err, b, _d) = run_against(Fault::BlobTooLarge).await;
    assert!(matches!(err, NetError::Protocol(_)), "{err}");
    assert!(err.to_string().contains("announced"), "{err}");
    assert_untouched(&b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_refused() {
    let (err, b, _d) = run_against(Fault::Garbage).await;
    assert!(matches!(err, NetError::Protocol(_)), "{err}");
    assert_untouched(&b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalling_peer_times_out() {
    let started = std::time::Instant::now();
    let (err, b, _d) = run_against(Fault::Stall).await;
    assert!(matches!(err, NetError::Timeout(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_untouched(&b);
}
