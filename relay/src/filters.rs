//! Routes: `/ws`, `/healthz`, `/metrics`, `/blobs` (attachments, [`crate::blob::routes`]), and the
//! web app.

use std::sync::Arc;

use hyper::upgrade::OnUpgrade;
use tungstenite::handshake::derive_accept_key;
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::blob::BlobService;
use crate::static_files::StaticSite;
use crate::ws::{self, Shared};

/// Every route of the relay, with the security headers common to all responses.
pub fn routes(
    shared: Arc<Shared>,
    site: Option<Arc<StaticSite>>,
    behind_tls: bool,
    blobs: Arc<BlobService>,
) -> BoxedFilter<(Response,)> {
    let ws_shared = shared.clone();
    let websocket = warp::path("ws").and(warp::path::end()).and(websocket_upgrade()).map(
        move |key: String, upgrade: OnUpgrade| {
            let shared = ws_shared.clone();
            let slot = shared.cap.try_acquire();
            tokio::spawn(async move {
                match upgrade.await {
                    Ok(upgraded) => ws::run(hyper_util::rt::TokioIo::new(upgraded), shared, slot).await,
                    Err(err) => tracing::debug!(error = %err, "websocket upgrade failed"),
                }
            });
            let reply = warp::reply::with_status(warp::reply(), StatusCode::SWITCHING_PROTOCOLS);
            let reply = warp::reply::with_header(reply, "connection", "upgrade");
            let reply = warp::reply::with_header(reply, "upgrade", "websocket");
            warp::reply::with_header(reply, "sec-websocket-accept", derive_accept_key(key.as_bytes()))
                .into_response()
        },
    );

    let healthz = warp::path("healthz").and(warp::path::end()).map(|| "ok\n".into_response());

    let metrics_shared = shared.clone();
    let metrics_blobs = blobs.clone();
    let metrics = warp::path("metrics").and(warp::path::end()).map(move || {
        let mut body = metrics_shared.metrics.render(metrics_shared.store.stats(), metrics_shared.cap.live());
        body.push_str(&metrics_blobs.store().stats().render());
        warp::reply::with_header(body, "content-type", "text/plain; version=0.0.4; charset=utf-8")
            .into_response()
    });

    let api = websocket.or(healthz).unify().or(metrics).unify().or(blobs.routes()).unify();
    let routes = match site {
        Some(site) => {
            let app = warp::get()
                .and(warp::path::tail())
                .and(warp::header::optional::<String>("accept-encoding"))
                .and(warp::header::optional::<String>("host"))
                .then(move |tail: warp::path::Tail, encoding: Option<String>, host: Option<String>| {
                    let site = site.clone();
                    async move {
                        site.serve(tail.as_str(), encoding.as_deref(), host.as_deref()).await.into_response()
                    }
                });
            api.or(app).unify().boxed()
        }
        None => api.boxed(),
    };
    routes.with(warp::reply::with::headers(common_headers(behind_tls))).map(Reply::into_response).boxed()
}

/// A WebSocket upgrade request (RFC 6455 section 4.2.1): yields the client's key and the pending
/// upgrade.
///
/// This is `warp::ws()` done by hand, because warp's `Ws` hands over a tungstenite socket; the relay
/// wants the raw connection (see [`ws`] for why).
fn websocket_upgrade() -> impl Filter<Extract = (String, OnUpgrade), Error = Rejection> + Clone {
    let connection_upgrade = warp::header::<String>("connection")
        .and_then(|value: String| async move {
            if value.split(',').any(|token| token.trim().eq_ignore_ascii_case("upgrade")) {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            }
        })
        .untuple_one();
    warp::get()
        .and(connection_upgrade)
        .and(warp::header::exact_ignore_case("upgrade", "websocket"))
        .and(warp::header::exact("sec-websocket-version", "13"))
        .and(warp::header::<String>("sec-websocket-key"))
        .and(warp::ext::get::<OnUpgrade>())
}

fn common_headers(behind_tls: bool) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert(
        "permissions-policy",
        HeaderValue::from_static(
            "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=(), \
             browsing-topics=(), clipboard-write=(self)",
        ),
    );
    if behind_tls {
        headers.insert(
            "strict-transport-security",
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        );
    }
    headers
}
