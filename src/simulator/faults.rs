//! How the simulator serves an answer that a [`Fault`] changes: delayed, malformed, oversized,
//! trickled, endless, a gzip bomb, a reset connection, a redirect loop.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;

use super::{Fault, envelope, json_response, status_code};

/// The answer: the rows (`rows` is called only for answers that hold them), or what the fault
/// makes of it.
pub(super) async fn answer(fault: Option<Fault>, rows: impl Fn() -> Vec<Value>) -> Response {
    // The normal answer's bytes, for the faults that mangle it.
    let text = || Bytes::from(envelope(rows()).to_string());
    match fault {
        None => json_response(200, &envelope(rows())),
        Some(Fault::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            json_response(200, &envelope(rows()))
        }
        Some(Fault::Documented { error, http_status }) => json_response(http_status, &error.body()),
        Some(Fault::Raw { status, body }) => (status_code(status), body).into_response(),
        Some(Fault::RetryAfter { status, seconds }) => {
            (status_code(status), [(header::RETRY_AFTER, seconds.to_string())]).into_response()
        }
        Some(Fault::MalformedJson) => {
            (StatusCode::OK, "{\"code\": 200, \"data\": [{,}").into_response()
        }
        Some(Fault::TruncatedJson) => {
            let text = text();
            (StatusCode::OK, text.slice(..text.len() / 2)).into_response()
        }
        Some(Fault::Oversized(size)) => (StatusCode::OK, padded_body(size)).into_response(),
        Some(Fault::OversizedStreamed(size)) => in_chunks(padded_body(size).into_bytes()),
        Some(Fault::RawBytes { status, body }) => (status_code(status), body).into_response(),
        Some(Fault::Trickle(every)) => trickled(text(), every),
        Some(Fault::Endless) => endless(),
        Some(Fault::GzipBomb(size)) => {
            let body =
                tokio::task::spawn_blocking(move || gzip_of_blanks(size)).await.unwrap_or_default();
            (
                StatusCode::OK,
                [(header::CONTENT_ENCODING, "gzip"), (header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response()
        }
        Some(Fault::ResetMidBody) => reset_mid_body(text()),
        Some(Fault::RedirectLoop) => {
            (StatusCode::FOUND, [(header::LOCATION, "/api/v2/billing.php?api=gamification")])
                .into_response()
        }
    }
}

/// `body` streamed in 16 KiB chunks.
fn in_chunks(body: Vec<u8>) -> Response {
    let chunks = body
        .chunks(16 * 1024)
        .map(|c| Ok::<_, Infallible>(Bytes::copy_from_slice(c)))
        .collect::<Vec<_>>();
    Response::new(Body::from_stream(futures_util::stream::iter(chunks)))
}

/// `body` one byte at a time, `every` apart.
fn trickled(body: Bytes, every: Duration) -> Response {
    let bytes = futures_util::stream::unfold(0, move |at| {
        let body = body.clone();
        async move {
            tokio::time::sleep(every).await;
            (at < body.len()).then(|| (Ok::<_, Infallible>(body.slice(at..at + 1)), at + 1))
        }
    });
    Response::new(Body::from_stream(bytes))
}

/// Blanks, 64 KiB at a time, for ever.
fn endless() -> Response {
    let chunk = Bytes::from(vec![b' '; 64 * 1024]);
    let bytes = futures_util::stream::unfold(chunk, |chunk| async move {
        tokio::task::yield_now().await;
        Some((Ok::<_, Infallible>(chunk.clone()), chunk))
    });
    Response::new(Body::from_stream(bytes))
}

/// Half of `body`, then the connection reset.
fn reset_mid_body(body: Bytes) -> Response {
    let half = body.slice(..body.len() / 2);
    let parts = futures_util::stream::iter([
        Ok(half),
        Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by the simulator")),
    ]);
    Response::new(Body::from_stream(parts))
}

fn gzip_of_blanks(size: usize) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for _ in 0..size / 65536 {
        encoder.write_all(&[b' '; 65536]).expect("writing to a Vec cannot fail");
    }
    encoder.finish().expect("writing to a Vec cannot fail")
}

fn padded_body(size: usize) -> String {
    format!("{{\"code\": 200, \"error\": null, \"msg\": \"{}\", \"data\": []}}", "x".repeat(size))
}
