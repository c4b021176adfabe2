//! Invite bundles (short invite links, docs/relay-protocol.md "Invite bundles"): stored opaque,
//! fetched by id, deleted only with the delete secret, gone after the TTL, within quotas. On the
//! redb store and on the suite's store (memory, or the Valkey cluster in xtask's cluster pass).

mod common;

use common::{Client, finish, start_memory, test_config};
use doorless_frames::{ErrorCode, Frame, MAX_BUNDLE_LEN};
use relay::Config;
use sha2::{Digest, Sha256};

const ID: [u8; 16] = [7; 16];
const SECRET: [u8; 32] = [9; 32];

fn delete_hash(secret: &[u8; 32]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

fn sealed(seed: u8) -> Vec<u8> {
    (0..1543u32).map(|i| (i as u8).wrapping_mul(seed)).collect()
}

async fn put(client: &mut Client, request: u32, id: [u8; 16], bundle: Vec<u8>) -> Frame {
    client.send(&Frame::PutBundle { request, id, delete_hash: delete_hash(&SECRET), bundle }).await;
    client.recv().await
}

async fn get(client: &mut Client, request: u32, id: [u8; 16]) -> Frame {
    client.send(&Frame::GetBundle { request, id }).await;
    client.recv().await
}

async fn delete(client: &mut Client, request: u32, id: [u8; 16], delete_secret: [u8; 32]) -> Frame {
    client.send(&Frame::DeleteBundle { request, id, delete_secret }).await;
    client.recv().await
}

async fn relays(
    dir: &std::path::Path,
    config: Config,
) -> Vec<(relay::Relay, Option<std::sync::Arc<relay::ManualClock>>)> {
    let (memory, clock) = start_memory(config.clone()).await;
    let redb = relay::start(&Config { data_dir: dir.to_path_buf(), ..config }).await.unwrap();
    vec![(memory, Some(clock)), (redb, None)]
}

#[tokio::test]
async fn a_bundle_is_served_as_stored_and_deleted_only_with_its_secret() {
    let dir = tempfile::tempdir().unwrap();
    for (relay, _) in relays(dir.path(), test_config()).await {
        let mut inviter = Client::connect(relay.addr()).await;
        assert_eq!(put(&mut inviter, 1, ID, sealed(3)).await, Frame::BundleStored { request: 1 });
        // Uploaded again (a lost confirmation): confirmed, the first one kept.
        assert_eq!(put(&mut inviter, 2, ID, sealed(5)).await, Frame::BundleStored { request: 2 });
        let mut joiner = Client::connect(relay.addr()).await;
        assert_eq!(get(&mut joiner, 3, ID).await, Frame::Bundle { request: 3, bundle: sealed(3) });
        assert_eq!(
            get(&mut joiner, 4, [8; 16]).await,
            Frame::Error { request: 4, code: ErrorCode::NoSuchBundle }
        );
        // Someone else's put under the same id does not replace it.
        joiner.send(&Frame::PutBundle { request: 5, id: ID, delete_hash: [0; 32], bundle: vec![1] }).await;
        assert_eq!(joiner.recv().await, Frame::Error { request: 5, code: ErrorCode::BadProof });
        // A wrong secret deletes nothing, and the connection goes on.
        assert_eq!(
            delete(&mut joiner, 6, ID, [1; 32]).await,
            Frame::Error { request: 6, code: ErrorCode::BadProof }
        );
        assert_eq!(get(&mut joiner, 7, ID).await, Frame::Bundle { request: 7, bundle: sealed(3) });
        assert_eq!(delete(&mut inviter, 8, ID, SECRET).await, Frame::BundleDeleted { request: 8 });
        assert_eq!(get(&mut joiner, 9, ID).await, Frame::Error { request: 9, code: ErrorCode::NoSuchBundle });
        // Deleting what is gone is confirmed too (the inviter's retry after a lost answer).
        assert_eq!(delete(&mut inviter, 10, ID, SECRET).await, Frame::BundleDeleted { request: 10 });
        assert_eq!(relay.store().stats().blobs, 0, "nothing left behind");
        finish(relay).await;
    }
}

#[tokio::test]
async fn a_bundle_expires_with_the_relays_ttl() {
    let config = Config { ttl_secs: 60, ..test_config() };
    let (relay, clock) = start_memory(config).await;
    let mut inviter = Client::connect(relay.addr()).await;
    assert_eq!(put(&mut inviter, 1, ID, sealed(3)).await, Frame::BundleStored { request: 1 });
    clock.advance(59_000);
    assert_eq!(get(&mut inviter, 2, ID).await, Frame::Bundle { request: 2, bundle: sealed(3) });
    clock.advance(1_000);
    assert_eq!(get(&mut inviter, 3, ID).await, Frame::Error { request: 3, code: ErrorCode::NoSuchBundle });
    relay.store().expire().await.unwrap();
    assert_eq!(relay.store().stats().blobs, 0);
    finish(relay).await;
}

#[tokio::test]
async fn bundles_are_limited_per_connection_in_size_and_by_the_relays_quota() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config { max_stored_bytes: 40 * 1024, ..test_config() };
    let mut first = true;
    for (relay, _) in relays(dir.path(), config).await {
        let mut inviter = Client::connect(relay.addr()).await;
        for n in 0..relay::MAX_BUNDLES_PER_CONNECTION as u8 {
            assert_eq!(
                put(&mut inviter, n.into(), [n; 16], sealed(n)).await,
                Frame::BundleStored { request: n.into() }
            );
        }
        assert_eq!(
            put(&mut inviter, 100, [100; 16], sealed(1)).await,
            Frame::Error { request: 100, code: ErrorCode::TooManyBundles }
        );
        // The relay's storage quota: another connection fills it. (A cluster store's global quota
        // is Valkey's own `maxmemory`, not `max_stored_bytes`.)
        let on_cluster_store = common::on_cluster() && first;
        first = false;
        if on_cluster_store {
            finish(relay).await;
            continue;
        }
        let mut other = Client::connect(relay.addr()).await;
        let mut refused = None;
        for n in 0..40u8 {
            match put(&mut other, 200 + u32::from(n), [200u8.wrapping_add(n); 16], sealed(1)).await {
                Frame::BundleStored { .. } => {}
                answer => {
                    refused = Some(answer);
                    break;
                }
            }
        }
        assert!(matches!(refused, Some(Frame::Error { code: ErrorCode::RelayFull, .. })), "{refused:?}");
        // Larger than a bundle may be: refused, the connection closed.
        let mut big = Client::connect(relay.addr()).await;
        big.send(&Frame::PutBundle {
            request: 7,
            id: ID,
            delete_hash: [0; 32],
            bundle: vec![0; MAX_BUNDLE_LEN + 1],
        })
        .await;
        big.expect_error_then_close(7, ErrorCode::Malformed).await;
        finish(relay).await;
    }
}

#[tokio::test]
async fn bundle_requests_before_hello_are_unexpected() {
    let (relay, _) = start_memory(test_config()).await;
    let mut client = Client::connect_raw(relay.addr()).await;
    client.send(&Frame::GetBundle { request: 4, id: ID }).await;
    client.expect_error_then_close(4, ErrorCode::UnexpectedFrame).await;
    finish(relay).await;
}
