//! Routes: `/ws`, `/healthz`, `/metrics`, and the web app.

use std::sync::Arc;

use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, HeaderValue};
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::static_files::StaticSite;
use crate::ws::{self, Shared};

/// Every route of the relay, with the security headers common to all responses.
pub fn routes(
    shared: Arc<Shared>,
    site: Option<Arc<StaticSite>>,
    behind_tls: bool,
) -> BoxedFilter<(Response,)> {
    let socket_limit = shared.limits.max_frame_len.saturating_mul(2);
    let ws_shared = shared.clone();
    let websocket =
        warp::path("ws").and(warp::path::end()).and(warp::ws()).map(move |upgrade: warp::ws::Ws| {
            let shared = ws_shared.clone();
            let slot = shared.cap.try_acquire();
            // The socket layer refuses only frames far above the limit; the relay answers anything
            // above `max_frame_len` itself, with `FrameTooLarge`.
            upgrade
                .max_message_size(socket_limit)
                .max_frame_size(socket_limit)
                .on_upgrade(move |socket| ws::run(socket, shared, slot))
                .into_response()
        });

    let healthz = warp::path("healthz").and(warp::path::end()).map(|| "ok\n".into_response());

    let metrics_shared = shared.clone();
    let metrics = warp::path("metrics").and(warp::path::end()).map(move || {
        let body = metrics_shared.metrics.render(metrics_shared.store.stats(), metrics_shared.cap.live());
        warp::reply::with_header(body, "content-type", "text/plain; version=0.0.4; charset=utf-8")
            .into_response()
    });

    let api = websocket.or(healthz).unify().or(metrics).unify();
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
