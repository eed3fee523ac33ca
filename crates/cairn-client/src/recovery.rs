//! The recovery code: the user's root key written out, Bech32m with prefix
//! `cairnroot`, for the person to keep offline. The root key stays on the
//! first device (and on devices approved with it); the code gives it back
//! to any linked device of the user, should those be lost.

use std::fmt;
use std::str::FromStr;

use bech32::primitives::decode::CheckedHrpstring;
use bech32::{Bech32m, Hrp};
use cairn_crypto::RootKey;
use zeroize::Zeroizing;

use crate::client::Client;
use crate::error::Error;
use crate::local::Batch;

/// Human-readable part of a recovery code.
pub const RECOVERY_PREFIX: &str = "cairnroot";

/// The user's root key, as the person keeps it.
#[derive(Clone)]
pub struct RecoveryCode(RootKey);

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCode(..)")
    }
}

impl RecoveryCode {
    /// Its text, to show once to the person (wiped when dropped).
    pub fn reveal(&self) -> Result<Zeroizing<String>, Error> {
        let hrp = Hrp::parse(RECOVERY_PREFIX).map_err(|e| Error::Invalid(e.to_string()))?;
        bech32::encode::<Bech32m>(hrp, self.0.to_bytes().as_slice())
            .map(Zeroizing::new)
            .map_err(|e| Error::Invalid(e.to_string()))
    }
}

impl FromStr for RecoveryCode {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let invalid =
            |why: &dyn fmt::Display| Error::Invalid(format!("not a recovery code ({why})"));
        let text = Zeroizing::new(text.trim().to_lowercase());
        let checked = CheckedHrpstring::new::<Bech32m>(&text).map_err(|e| invalid(&e))?;
        if checked.hrp().as_str() != RECOVERY_PREFIX {
            return Err(invalid(&"wrong prefix"));
        }
        let bytes: Zeroizing<Vec<u8>> = Zeroizing::new(checked.byte_iter().collect());
        let seed: &[u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| invalid(&"wrong length"))?;
        Ok(Self(RootKey::from_bytes(seed)))
    }
}

impl Client {
    /// The recovery code of the root key this device holds.
    pub fn recovery_code(&self) -> Result<RecoveryCode, Error> {
        Ok(RecoveryCode(self.identity.linked()?.root()?.clone()))
    }

    /// Gives this linked device the root key from `code`, which must be
    /// its user's.
    pub fn recover_root(&mut self, code: &RecoveryCode) -> Result<(), Error> {
        let linked = self.identity.linked_mut()?;
        if code.0.user_id() != linked.user {
            return Err(Error::Invalid(
                "this recovery code is another user's root key".into(),
            ));
        }
        linked.root = Some(code.0.clone());
        let mut batch = Batch::default();
        self.save_identity(&mut batch)?;
        self.local.store().commit(batch)
    }

    /// Whether this device holds the root key.
    pub fn holds_root(&self) -> bool {
        self.identity.linked().is_ok_and(|l| l.root.is_some())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use cairn_crypto::os;

    use super::*;

    #[test]
    fn a_recovery_code_round_trips_in_either_case_and_catches_typos() {
        let root = RootKey::generate(&mut os::rng());
        let text = RecoveryCode(root.clone()).reveal().unwrap();
        assert!(text.starts_with("cairnroot1"));
        for form in [text.to_string(), text.to_uppercase()] {
            let back: RecoveryCode = form.parse().unwrap();
            assert_eq!(back.0.user_id(), root.user_id());
        }
        let typo = text.replacen('q', "p", 1);
        assert!(*typo == *text || typo.parse::<RecoveryCode>().is_err());
        assert!("cairnlink1qqqq".parse::<RecoveryCode>().is_err());
        assert_eq!(format!("{:?}", RecoveryCode(root)), "RecoveryCode(..)");
    }
}
