//! While lakeflyd stops, the API answers what it is asked to read but takes no change:
//! a deploy, scale or machine start then would start machines after their supervisors
//! had been stopped, left running once the daemon is gone.

use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ServerError, Shared};

/// Refuses (503) every request but a plain read once the daemon is stopping.
pub async fn refuse_changes(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let read = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        // A console or proxy upgrade runs a command or holds a machine's port.
        && !req.headers().contains_key(header::UPGRADE);
    if !read && state.runtime.is_stopping() {
        return ServerError::Stopping.into_response();
    }
    next.run(req).await
}
