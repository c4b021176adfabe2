//! The HTTP side of the relay: accepting TCP connections and serving them with hyper until they
//! upgrade to a WebSocket (then [`crate::ws`] has them) or close.
//!
//! This is the relay's own accept loop rather than `warp::serve`, for two things that one does not
//! do, and without which a few hundred sockets that never send a request hold the relay's file
//! descriptors for ever:
//! - a deadline on reading a request head (hyper's `header_read_timeout`, which needs a timer that
//!   warp does not give it): a connection that has not sent a whole request head in time, the first
//!   or the next on a kept-alive connection, is closed;
//! - at shutdown, connections that have not upgraded are closed (a request in progress gets a moment
//!   to finish), where warp's graceful shutdown waits for every one of them to end by itself.

use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use warp::filters::BoxedFilter;
use warp::reply::Response;

/// How long a request in progress at shutdown may take to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// How long to wait before accepting again after the system refused (out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `routes` on `listener` until `stop` turns true, then closes every connection that has
/// not upgraded and returns.
pub(crate) async fn serve(
    listener: TcpListener,
    routes: BoxedFilter<(Response,)>,
    header_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => accepted,
        };
        // Finished connections are reaped as new ones come, so the set holds only live ones.
        while connections.try_join_next().is_some() {}
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) if is_connection_error(&err) => continue,
            Err(err) => {
                tracing::error!(error = %err, "accepting a connection failed");
                tokio::select! {
                    _ = stop.wait_for(|stop| *stop) => break,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                }
            }
        };
        let routes = TowerToHyperService::new(warp::service(routes.clone()));
        let limits = std::sync::Arc::new(crate::limits::HttpConnection::default());
        let service =
            hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(limits.clone());
                hyper::service::Service::call(&routes, request)
            });
        let mut stop = stop.clone();
        connections.spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new()).header_read_timeout(header_timeout);
            let connection = http.serve_connection(TokioIo::new(stream), service).with_upgrades();
            tokio::pin!(connection);
            let stopping = async move {
                let _ = stop.wait_for(|stop| *stop).await;
            };
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = stopping => {
                    // Closes the connection if it is between requests (or has not sent one yet),
                    // else after the response to the request in progress.
                    connection.as_mut().graceful_shutdown();
                    match tokio::time::timeout(SHUTDOWN_GRACE, connection).await {
                        Ok(result) => result,
                        Err(_) => Ok(()),
                    }
                }
            };
            if let Err(err) = result {
                // Timeouts and broken connections: nothing about the client is logged.
                tracing::debug!(error = %err, "http connection ended with an error");
            }
        });
    }
    // Dropping the listener stops the kernel from queueing new connections.
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Errors of one connection that say nothing about the listener.
fn is_connection_error(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}
