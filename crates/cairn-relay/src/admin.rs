//! The admin HTTP listener: Prometheus `/metrics`, `/healthz`, and the
//! operator's API; and, when configured, a listener of its own for
//! `/metrics` and `/healthz` alone, which can be exposed without the API.
//!
//! The admin listener binds to loopback by default, and a web page in a
//! browser on the relay's host can reach loopback too. So every request
//! must name the listener in `Host` by an IP literal or `localhost` (a
//! page's own host name, DNS-rebound to loopback, is refused), and every
//! `/admin/` request must carry the token from `admin.json` in the data
//! directory; requests that change something must also be JSON, which a
//! page cannot send across origins without a preflight this API never
//! answers.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use axum::{Router, middleware};
use cairn_store::Store;
use cairn_wire::{DeviceId, ErrorCode, UserId};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::admin_guard::{self as guard, Guard};
use crate::config::Backend;
use crate::invites::{self, InviteError};
use crate::server::Shared;
use crate::{ops, removal, retention};

/// Serves the admin API on `listener` until the relay stops; `/admin/`
/// requests must carry `token`.
pub async fn serve<S: Store>(shared: Arc<Shared<S>>, listener: TcpListener, token: String) {
    let guard = match listener.local_addr() {
        Ok(addr) => Guard::new(addr.port(), token),
        Err(e) => return tracing::error!(error = %e, "admin listener has no address"),
    };
    let router = Router::new()
        .route("/healthz", get(healthz::<S>))
        .route("/metrics", get(prometheus::<S>))
        .route("/admin/stats", get(stats::<S>))
        .route("/admin/users", get(users::<S>))
        .route("/admin/users/{user}/remove", post(remove_user::<S>))
        .route("/admin/devices/{device}/ban", post(ban::<S>))
        .route("/admin/devices/{device}/unban", post(unban::<S>))
        .route("/admin/reload", post(reload::<S>))
        .route("/admin/compact", post(compact::<S>))
        .route("/admin/backup", post(backup::<S>))
        .route(
            "/admin/invites",
            get(list_invites::<S>).post(create_invite::<S>),
        )
        .route("/admin/invites/{id}/revoke", post(revoke_invite::<S>))
        .with_state(shared)
        .layer(middleware::from_fn_with_state(guard, guard::check));
    if let Err(e) = axum::serve(listener, router).await {
        tracing::error!(error = %e, "admin listener failed");
    }
}

/// Serves `/metrics` and `/healthz` alone on `listener` until the relay
/// stops: what can be exposed to a monitoring system.
pub async fn serve_metrics<S: Store>(shared: Arc<Shared<S>>, listener: TcpListener) {
    let router = Router::new()
        .route("/healthz", get(healthz::<S>))
        .route("/metrics", get(prometheus::<S>))
        .with_state(shared);
    if let Err(e) = axum::serve(listener, router).await {
        tracing::error!(error = %e, "metrics listener failed");
    }
}

async fn healthz<S: Store>(State(shared): State<Arc<Shared<S>>>) -> Response {
    match shared.store.stats().await {
        Ok(_) if shared.shutdown.is_cancelled() => {
            (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
        }
        Ok(_) if shared.disk.is_full() => (
            StatusCode::SERVICE_UNAVAILABLE,
            "storage full: appends are refused until there is room; reads go on\n",
        )
            .into_response(),
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("storage unavailable: {e}\n"),
        )
            .into_response(),
    }
}

async fn prometheus<S: Store>(State(shared): State<Arc<Shared<S>>>) -> Response {
    match crate::metrics::prometheus() {
        Some(handle) => {
            crate::metrics::render(&handle, &shared.config.database_path()).into_response()
        }
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder unavailable\n",
        )
            .into_response(),
    }
}

async fn stats<S: Store>(State(shared): State<Arc<Shared<S>>>) -> Response {
    match ops::stats_json(&shared.store, shared.config.limits.quota()).await {
        Ok(stats) => Json(stats).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn users<S: Store>(State(shared): State<Arc<Shared<S>>>) -> Response {
    match ops::users(&shared.store, shared.config.limits.quota()).await {
        Ok(users) => Json(users).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn ban<S: Store>(
    State(shared): State<Arc<Shared<S>>>,
    Path(device): Path<String>,
) -> Response {
    let device = match device_in_path(&device) {
        Ok(device) => device,
        Err(refusal) => return *refusal,
    };
    match ban_everywhere(&shared, device).await {
        Ok(new) => {
            tracing::info!(%device, newly_banned = new, "banned by the operator");
            shared.sessions.close_banned(
                device,
                ErrorCode::DEVICE_BANNED,
                "device banned by the relay operator",
            );
            Json(BanAnswer {
                device: device.to_text(),
                newly_banned: new,
            })
            .into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

/// Bans `device`: in the ban file of a single relay; in the store of a
/// cluster node, so that every node refuses it (each acts on the ban as it
/// applies the log). Whether it was new.
async fn ban_everywhere<S: Store>(shared: &Shared<S>, device: DeviceId) -> Result<bool, String> {
    if shared.config.storage.backend != Backend::Jetstream {
        return shared.bans.add(device).map_err(|e| e.to_string());
    }
    let new = shared
        .store
        .ban_device(device, crate::clock::now_ms())
        .await
        .map_err(|e| e.to_string())?;
    shared.bans.set_cluster_ban(device, true);
    Ok(new)
}

/// Lifts `device`'s ban: from the ban file, and on a cluster node from the
/// store too. Whether it was banned.
async fn unban_everywhere<S: Store>(shared: &Shared<S>, device: DeviceId) -> Result<bool, String> {
    let mut was = shared.bans.remove(&device).map_err(|e| e.to_string())?;
    if shared.config.storage.backend == Backend::Jetstream {
        was |= shared
            .store
            .unban_device(device)
            .await
            .map_err(|e| e.to_string())?;
        shared.bans.set_cluster_ban(device, false);
    }
    Ok(was)
}

async fn remove_user<S: Store>(
    State(shared): State<Arc<Shared<S>>>,
    Path(user): Path<String>,
    Json(request): Json<removal::RemoveRequest>,
) -> Response {
    let user: UserId = match user.parse() {
        Ok(user) => user,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("{e}")),
    };
    let now = crate::clock::now_ms();
    let sessions = Some(&shared.sessions);
    match removal::remove(&shared.store, sessions, user, request.force, now).await {
        Ok(removed) => Json(removed).into_response(),
        Err(e @ removal::RemoveError::Connected(_)) => error(StatusCode::CONFLICT, &e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn compact<S: Store>(State(shared): State<Arc<Shared<S>>>) -> Response {
    let retention = shared.live.config().retention.clone();
    match retention::compact(&shared.store, &retention, crate::clock::now_ms()).await {
        Ok(compacted) => Json(compacted).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// The body of `POST /admin/backup`.
#[derive(Debug, Serialize, Deserialize)]
pub struct BackupRequest {
    /// Where to write the snapshot; must not exist.
    pub out: PathBuf,
}

async fn backup<S: Store>(
    State(shared): State<Arc<Shared<S>>>,
    Json(request): Json<BackupRequest>,
) -> Response {
    match shared.store.backup(&request.out).await {
        Ok(()) => {
            tracing::info!(out = %request.out.display(), "backup written");
            Json(serde_json::json!({ "out": request.out })).into_response()
        }
        Err(e) => {
            tracing::error!(out = %request.out.display(), error = %e, "backup failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
        }
    }
}

async fn create_invite<S: Store>(
    State(shared): State<Arc<Shared<S>>>,
    Json(request): Json<invites::CreateRequest>,
) -> Response {
    match invites::create(&shared.store, request, crate::clock::now_ms()).await {
        Ok(new) => Json(new).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn list_invites<S: Store>(State(shared): State<Arc<Shared<S>>>) -> Response {
    match invites::list(&shared.store).await {
        Ok(all) => Json(all).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn revoke_invite<S: Store>(
    State(shared): State<Arc<Shared<S>>>,
    Path(id): Path<String>,
) -> Response {
    match invites::revoke(&shared.store, &id).await {
        Ok(revoked) => Json(revoked).into_response(),
        Err(e @ (InviteError::Unknown(_) | InviteError::Ambiguous(_))) => {
            error(StatusCode::NOT_FOUND, &e.to_string())
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn unban<S: Store>(
    State(shared): State<Arc<Shared<S>>>,
    Path(device): Path<String>,
) -> Response {
    let device = match device_in_path(&device) {
        Ok(device) => device,
        Err(refusal) => return *refusal,
    };
    match unban_everywhere(&shared, device).await {
        Ok(was) => {
            tracing::info!(%device, was_banned = was, "unbanned by the operator");
            Json(serde_json::json!({ "device": device.to_text(), "was_banned": was }))
                .into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

async fn reload<S: Store>(State(shared): State<Arc<Shared<S>>>) -> Response {
    match shared.reload() {
        Ok(changes) => Json(reload_answer(&changes)).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

/// What a reload changed, as the operator API and CLI show it.
pub fn reload_answer(changes: &crate::server::Reloaded) -> serde_json::Value {
    let texts = |devices: &[DeviceId]| devices.iter().map(DeviceId::to_text).collect::<Vec<_>>();
    serde_json::json!({
        "banned": texts(&changes.bans.banned),
        "unbanned": texts(&changes.bans.unbanned),
        "applied": changes.config.applied,
        "at_restart": changes.config.at_restart,
    })
}

#[derive(Debug, Serialize)]
struct BanAnswer {
    device: String,
    newly_banned: bool,
}

/// The device a path names, or the 400 answer for text that is not one.
fn device_in_path(text: &str) -> Result<DeviceId, Box<Response>> {
    text.parse().map_err(|e: cairn_wire::IdParseError| {
        Box::new(error(StatusCode::BAD_REQUEST, &e.to_string()))
    })
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}
