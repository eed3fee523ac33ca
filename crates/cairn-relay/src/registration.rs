//! Whether a new user may register: the per-address budget, then the
//! registration policy. Under `invite`, a code is either one of the
//! configured codes (reusable shared secrets) or an operator invite in the
//! database, of which this registration spends one use.

use std::net::IpAddr;

use cairn_store::{Redemption, Store};
use cairn_wire::{AuthRequest, ErrorCode, ErrorDetail, WireError};
use subtle::ConstantTimeEq;

use crate::clock;
use crate::config::RegistrationPolicy;
use crate::invites;
use crate::metrics;
use crate::server::Shared;
use crate::session::Fatal;

/// Takes one registration from the address's budget, or refuses with the
/// wait before the next. It is taken before the policy is asked, so that
/// guessing invite codes costs the same budget.
pub fn budget<S: Store>(shared: &Shared<S>, ip: IpAddr) -> Result<(), Fatal> {
    let Err(wait) = shared.live.rates().check_registration(ip) else {
        return Ok(());
    };
    metrics::counter(metrics::REGISTRATIONS_RATE_LIMITED);
    let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
    let error = WireError::new(
        ErrorCode::RATE_LIMITED,
        "too many new users from this address; retry later",
    )
    .with_detail(ErrorDetail::RetryAfterMs(ms));
    Err(Fatal(error))
}

/// Whether the policy admits the user `auth` registers.
pub async fn admits<S: Store>(shared: &Shared<S>, auth: &AuthRequest) -> Result<(), Fatal> {
    let config = shared.live.config();
    let registration = &config.registration;
    let admitted = match registration.policy {
        RegistrationPolicy::Open => true,
        RegistrationPolicy::AllowList => {
            let user = auth.certificate.body().user;
            registration.allow.iter().any(|allowed| allowed.0 == user)
        }
        RegistrationPolicy::Invite => match auth.invite.as_ref() {
            Some(code) => invited(shared, code.as_str()).await?,
            None => false,
        },
    };
    match admitted {
        true => Ok(()),
        false => Err(Fatal::new(
            ErrorCode::REGISTRATION_REFUSED,
            "this relay does not admit new users without an invitation",
        )),
    }
}

/// A configured code, or a stored invite with a use left (spent now).
async fn invited<S: Store>(shared: &Shared<S>, code: &str) -> Result<bool, Fatal> {
    let configured = shared
        .live
        .config()
        .registration
        .invites
        .iter()
        .any(|known| bool::from(known.as_bytes().ct_eq(code.as_bytes())));
    if configured {
        return Ok(true);
    }
    match invites::redeem(&shared.store, code, clock::now_ms()).await {
        Ok(Redemption::Spent) => Ok(true),
        Ok(Redemption::Unknown | Redemption::Expired) => Ok(false),
        Err(e) => {
            tracing::error!(error = %e, "invite lookup failed");
            Err(Fatal::new(ErrorCode::INTERNAL, "registry unavailable"))
        }
    }
}
