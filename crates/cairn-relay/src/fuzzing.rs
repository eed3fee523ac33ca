//! Entry points for cairn's fuzz targets (`fuzz/`), behind the `fuzzing`
//! feature: the relay's request handling from authenticated sessions,
//! driven without QUIC. A target builds a [`Shared`] on a store with
//! [`shared_on`], takes callers as authenticated
//! ([`crate::session::Caller::assumed`]) and sends requests through
//! [`crate::handlers::answer`], the same function a request stream calls.

use std::path::Path;
use std::sync::Arc;

use cairn_store::Store;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bans::{Bans, BansError};
use crate::config::RelayConfig;
use crate::disk::DiskState;
use crate::fanout::Hub;
use crate::live::Live;
use crate::server::Shared;
use crate::session::Sessions;

/// What the handlers share, on `store`, with the default configuration
/// and rate limits that never refuse (a fuzzer sends thousands of requests
/// a second as one user); bans are kept in `data_dir`.
pub fn shared_on<S: Store>(store: S, data_dir: &Path) -> Result<Arc<Shared<S>>, BansError> {
    let mut config = RelayConfig {
        data_dir: data_dir.to_owned(),
        ..RelayConfig::default()
    };
    config.limits.requests_per_second_per_user = u32::MAX;
    config.limits.request_burst_per_user = u32::MAX;
    config.limits.requests_per_second_per_ip = u32::MAX;
    config.limits.request_burst_per_ip = u32::MAX;
    Ok(Arc::new(Shared {
        live: Live::new(&config),
        hub: Arc::new(Hub::default()),
        sessions: Sessions::default(),
        tasks: TaskTracker::new(),
        shutdown: CancellationToken::new(),
        bans: Bans::load(data_dir)?,
        disk: DiskState::default(),
        config,
        source: None,
        store,
    }))
}
