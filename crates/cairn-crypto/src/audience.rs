//! Audiences: a named set of members and one symmetric key per epoch.
//!
//! Removing a member starts a new epoch with a fresh key that the removed
//! member never receives, so they cannot open what is posted after. Adding
//! a member does not rotate: the owner grants the current key, and older
//! ones if the new member should read history. The user's own devices share
//! a private audience with no members, whose keys travel in device-link
//! bundles. Names stay here, on the client; the relay only ever sees the
//! random 16-byte [`AudienceId`].

use std::collections::BTreeMap;
use std::fmt;

use cairn_wire::codec::{V1, Version};
use cairn_wire::{BoundedString, DecodeError, ExchangeKey, UserId};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::AudienceError;
use crate::keys::AudienceKey;
use crate::secret_codec;

/// Most members an audience may have.
pub const MAX_MEMBERS: usize = 10_000;
/// Most epoch keys an audience keeps.
pub const MAX_EPOCHS: usize = 1024;
/// Longest audience name, in bytes.
pub const MAX_NAME_LEN: usize = 128;
/// Largest encoded audience state or keyring.
pub const MAX_STATE_LEN: usize = 4 * 1024 * 1024;

/// An audience's opaque id, chosen at random by its owner.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AudienceId([u8; 16]);

impl AudienceId {
    /// Length in bytes.
    pub const LEN: usize = 16;

    /// A fresh random id.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Wraps raw bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for AudienceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for AudienceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AudienceId({self})")
    }
}

/// An audience's key generation: 0 at creation, +1 on every rotation.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct Epoch(pub u32);

impl Epoch {
    /// The epoch of a new audience.
    pub const FIRST: Self = Self(0);

    /// The epoch after this one, if any is left.
    pub fn next(self) -> Option<Self> {
        self.0.checked_add(1).map(Self)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A member: a user and the exchange key their audience keys are sealed to
/// (their user exchange key, shared by all their devices).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Member {
    /// The member.
    pub user: UserId,
    /// Where to seal their keys.
    pub exchange_key: ExchangeKey,
}

/// One audience key, as granted to a member or a linked device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyGrant {
    /// Which audience.
    pub audience: AudienceId,
    /// Which epoch.
    pub epoch: Epoch,
    /// That epoch's key.
    pub key: AudienceKey,
}

/// What a post's key is wrapped for: one audience at one epoch.
#[derive(Debug, Clone, Copy)]
pub struct WrapTarget<'a> {
    /// The audience.
    pub audience: AudienceId,
    /// Its epoch.
    pub epoch: Epoch,
    /// Its key at that epoch.
    pub key: &'a AudienceKey,
}

/// Where a reader looks up the key of a wrap.
pub trait KeyLookup {
    /// The key of `audience` at `epoch`, as owned by `author`.
    fn audience_key(
        &self,
        author: &UserId,
        audience: &AudienceId,
        epoch: Epoch,
    ) -> Option<&AudienceKey>;

    /// Every key held for `audience` at `epoch`: two devices of the owner
    /// that rotated at the same time each made one, and a wrap opens with
    /// whichever it was made with.
    fn audience_keys(
        &self,
        author: &UserId,
        audience: &AudienceId,
        epoch: Epoch,
    ) -> Vec<&AudienceKey> {
        self.audience_key(author, audience, epoch)
            .into_iter()
            .collect()
    }
}

/// An audience as its owner keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Audience {
    version: V1,
    id: AudienceId,
    name: BoundedString<MAX_NAME_LEN>,
    epoch: Epoch,
    key: AudienceKey,
    history: BTreeMap<Epoch, AudienceKey>,
    members: BTreeMap<UserId, ExchangeKey>,
}

impl Audience {
    /// A new audience with no members at [`Epoch::FIRST`]. Draws the id,
    /// then the key.
    pub fn new(rng: &mut impl CryptoRng, name: &str) -> Result<Self, AudienceError> {
        let name = BoundedString::new(name.to_owned()).map_err(|e| AudienceError::NameTooLong {
            len: e.len,
            max: e.max,
        })?;
        let id = AudienceId::generate(rng);
        Ok(Self {
            version: V1,
            id,
            name,
            epoch: Epoch::FIRST,
            key: AudienceKey::generate(rng),
            history: BTreeMap::new(),
            members: BTreeMap::new(),
        })
    }

    /// The id the relay sees.
    pub fn id(&self) -> AudienceId {
        self.id
    }

    /// The client-side name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// The current epoch, the one new posts are wrapped for.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The current epoch's key.
    pub fn current_key(&self) -> &AudienceKey {
        &self.key
    }

    /// The key of `epoch`, if this audience holds it.
    pub fn key(&self, epoch: Epoch) -> Option<&AudienceKey> {
        if epoch == self.epoch {
            return Some(&self.key);
        }
        self.history.get(&epoch)
    }

    /// Where new posts for this audience wrap their key.
    pub fn target(&self) -> WrapTarget<'_> {
        WrapTarget {
            audience: self.id,
            epoch: self.epoch,
            key: self.current_key(),
        }
    }

    /// The current members.
    pub fn members(&self) -> impl Iterator<Item = Member> + '_ {
        self.members.iter().map(|(user, exchange_key)| Member {
            user: *user,
            exchange_key: *exchange_key,
        })
    }

    /// Number of members.
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// Whether `user` is a member.
    pub fn is_member(&self, user: &UserId) -> bool {
        self.members.contains_key(user)
    }

    /// Adds `member`, or updates their exchange key. Does not rotate: grant
    /// them [`Audience::current_grant`] (and older epochs for history).
    pub fn add_member(&mut self, member: Member) -> Result<(), AudienceError> {
        if !self.members.contains_key(&member.user) && self.members.len() >= MAX_MEMBERS {
            return Err(AudienceError::TooManyMembers { max: MAX_MEMBERS });
        }
        self.members.insert(member.user, member.exchange_key);
        Ok(())
    }

    /// Drops `user` from the members without rotating: the audience must
    /// rotate before anything more is sealed to it (as after merging two
    /// concurrent edits), or `user` keeps reading. Whether they were a
    /// member.
    pub fn forget_member(&mut self, user: &UserId) -> bool {
        self.members.remove(user).is_some()
    }

    /// Removes `user` and rotates to a new epoch whose key they never get.
    /// Grant the new key to the remaining members.
    pub fn remove_member(
        &mut self,
        rng: &mut impl CryptoRng,
        user: &UserId,
    ) -> Result<Epoch, AudienceError> {
        if !self.members.contains_key(user) {
            return Err(AudienceError::NotAMember);
        }
        let epoch = self.rotate(rng)?;
        self.members.remove(user);
        Ok(epoch)
    }

    /// Starts a new epoch with a fresh key, e.g. after a device of the
    /// owner was revoked. Older keys are kept to read older posts.
    pub fn rotate(&mut self, rng: &mut impl CryptoRng) -> Result<Epoch, AudienceError> {
        let next = self.epoch.next().ok_or(AudienceError::EpochsExhausted)?;
        if self.history.len() + 1 >= MAX_EPOCHS {
            return Err(AudienceError::TooManyEpochs { max: MAX_EPOCHS });
        }
        let previous = std::mem::replace(&mut self.key, AudienceKey::generate(rng));
        self.history.insert(self.epoch, previous);
        self.epoch = next;
        Ok(next)
    }

    /// The grant of the current epoch's key.
    pub fn current_grant(&self) -> KeyGrant {
        KeyGrant {
            audience: self.id,
            epoch: self.epoch,
            key: self.current_key().clone(),
        }
    }

    /// The grants of every epoch key held, oldest first: history for a new
    /// member, or the whole audience for a newly linked device.
    pub fn all_grants(&self) -> Vec<KeyGrant> {
        self.history
            .iter()
            .chain([(&self.epoch, &self.key)])
            .map(|(epoch, key)| KeyGrant {
                audience: self.id,
                epoch: *epoch,
                key: key.clone(),
            })
            .collect()
    }

    /// The versioned, canonical storage encoding (it holds keys: keep it
    /// secret).
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        secret_codec::encode(self)
    }

    /// Loads an audience stored by [`Audience::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let audience: Self = secret_codec::decode(bytes, MAX_STATE_LEN)?;
        audience.check()?;
        Ok(audience)
    }

    fn check(&self) -> Result<(), DecodeError> {
        let fits = self.members.len() <= MAX_MEMBERS && self.history.len() < MAX_EPOCHS;
        let newest = self
            .history
            .keys()
            .next_back()
            .is_none_or(|e| *e < self.epoch);
        if !fits || !newest {
            return Err(DecodeError::Malformed("inconsistent audience state".into()));
        }
        Ok(())
    }
}

impl KeyLookup for Audience {
    /// The owner's own view: ids are random, so the author is not checked.
    fn audience_key(
        &self,
        _: &UserId,
        audience: &AudienceId,
        epoch: Epoch,
    ) -> Option<&AudienceKey> {
        (*audience == self.id).then(|| self.key(epoch)).flatten()
    }
}

/// A key offered for a slot the keyring already holds another key for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyConflict {
    /// Whose audience.
    pub owner: UserId,
    /// Which audience.
    pub audience: AudienceId,
    /// Which epoch.
    pub epoch: Epoch,
}

/// Most keys kept for one (owner, audience, epoch) besides the first:
/// concurrent rotations by the owner's devices, never unbounded.
pub const MAX_ALTERNATE_KEYS: usize = 4;

/// The keyring's slot: whose audience, which audience, which epoch.
type Slot = (UserId, AudienceId, Epoch);

/// The audience keys a user has received, by (owner, audience, epoch).
/// The first key for a slot stays; another key for it (two of the owner's
/// devices rotated the audience at once) is kept beside it, never instead
/// of it, and reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keyring {
    keys: BTreeMap<Slot, AudienceKey>,
    alternates: BTreeMap<Slot, Vec<AudienceKey>>,
}

/// The keyring's encoding.
#[derive(Serialize, Deserialize)]
struct StoredKeyring {
    version: KeyringVersion,
    keys: BTreeMap<Slot, AudienceKey>,
    alternates: BTreeMap<Slot, Vec<AudienceKey>>,
}

/// The keyring's encoding of the first version, without alternates.
#[derive(Serialize, Deserialize)]
struct LegacyKeyring {
    version: V1,
    keys: BTreeMap<Slot, AudienceKey>,
}

/// The version byte of [`StoredKeyring`].
const KEYRING_VERSION: u8 = 2;

/// [`KEYRING_VERSION`] in an encoding.
type KeyringVersion = Version<KEYRING_VERSION>;

impl Keyring {
    /// An empty keyring.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds keys `owner` holds or granted. A key already held for the
    /// same (owner, audience, epoch) is never replaced: a different one is
    /// a conflict, returned, and kept beside the first (up to
    /// [`MAX_ALTERNATE_KEYS`]) so that posts wrapped with either open.
    #[must_use = "a conflict means another key was offered for a held slot"]
    pub fn insert(
        &mut self,
        owner: UserId,
        grants: impl IntoIterator<Item = KeyGrant>,
    ) -> Vec<KeyConflict> {
        let mut conflicts = Vec::new();
        for grant in grants {
            let slot = (owner, grant.audience, grant.epoch);
            match self.keys.get(&slot) {
                Some(held) if *held != grant.key => {
                    conflicts.push(KeyConflict {
                        owner,
                        audience: grant.audience,
                        epoch: grant.epoch,
                    });
                    let others = self.alternates.entry(slot).or_default();
                    if !others.contains(&grant.key) && others.len() < MAX_ALTERNATE_KEYS {
                        others.push(grant.key);
                    }
                }
                Some(_) => {}
                None => {
                    self.keys.insert(slot, grant.key);
                }
            }
        }
        conflicts
    }

    /// Adds every key of an audience that `owner` keeps, e.g. the private
    /// audience from a device-link bundle.
    #[must_use = "a conflict means another key was offered for a held slot"]
    pub fn insert_audience(&mut self, owner: UserId, audience: &Audience) -> Vec<KeyConflict> {
        self.insert(owner, audience.all_grants())
    }

    /// Number of slots held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// The latest epoch of `owner`'s `audience` whose key is held.
    pub fn latest_epoch(&self, owner: &UserId, audience: &AudienceId) -> Option<Epoch> {
        let first = (*owner, *audience, Epoch(0));
        let last = (*owner, *audience, Epoch(u32::MAX));
        self.keys
            .range(first..=last)
            .next_back()
            .map(|((_, _, epoch), _)| *epoch)
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The versioned, canonical storage encoding (keep it secret).
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        secret_codec::encode(&StoredKeyring {
            version: Version,
            keys: self.keys.clone(),
            alternates: self.alternates.clone(),
        })
    }

    /// Loads a keyring stored by [`Keyring::encode`], or by the first
    /// version (without alternates).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if let Ok(stored) =
            secret_codec::decode_version::<StoredKeyring>(bytes, MAX_STATE_LEN, KEYRING_VERSION)
        {
            let bounded = stored
                .alternates
                .values()
                .all(|keys| keys.len() <= MAX_ALTERNATE_KEYS);
            if !bounded {
                return Err(DecodeError::Malformed("too many alternate keys".into()));
            }
            return Ok(Self {
                keys: stored.keys,
                alternates: stored.alternates,
            });
        }
        let legacy: LegacyKeyring = secret_codec::decode(bytes, MAX_STATE_LEN)?;
        Ok(Self {
            keys: legacy.keys,
            alternates: BTreeMap::new(),
        })
    }
}

impl KeyLookup for Keyring {
    fn audience_key(
        &self,
        author: &UserId,
        audience: &AudienceId,
        epoch: Epoch,
    ) -> Option<&AudienceKey> {
        self.keys.get(&(*author, *audience, epoch))
    }

    fn audience_keys(
        &self,
        author: &UserId,
        audience: &AudienceId,
        epoch: Epoch,
    ) -> Vec<&AudienceKey> {
        let slot = (*author, *audience, epoch);
        self.keys
            .get(&slot)
            .into_iter()
            .chain(self.alternates.get(&slot).into_iter().flatten())
            .collect()
    }
}

impl<T: KeyLookup + ?Sized> KeyLookup for &T {
    fn audience_key(
        &self,
        author: &UserId,
        audience: &AudienceId,
        epoch: Epoch,
    ) -> Option<&AudienceKey> {
        (**self).audience_key(author, audience, epoch)
    }

    fn audience_keys(
        &self,
        author: &UserId,
        audience: &AudienceId,
        epoch: Epoch,
    ) -> Vec<&AudienceKey> {
        (**self).audience_keys(author, audience, epoch)
    }
}
