//! Length-bounded containers whose decoders refuse an over-long length
//! prefix before allocating anything.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use serde::ser::{Serialize, Serializer};

/// A value is longer than its field allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("length {len} exceeds the limit of {max}")]
pub struct TooLong {
    /// The length that was offered.
    pub len: usize,
    /// The field's limit.
    pub max: usize,
}

/// Opaque bytes of at most `MAX` bytes.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BoundedBytes<const MAX: usize>(Vec<u8>);

impl<const MAX: usize> BoundedBytes<MAX> {
    /// Wraps `bytes`, refusing more than `MAX` of them.
    pub fn new(bytes: Vec<u8>) -> Result<Self, TooLong> {
        check_len(bytes.len(), MAX)?;
        Ok(Self(bytes))
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// Gives the bytes back.
    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<const MAX: usize> fmt::Debug for BoundedBytes<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}

impl<const MAX: usize> Serialize for BoundedBytes<MAX> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de, const MAX: usize> Deserialize<'de> for BoundedBytes<MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_bytes(BytesVisitor::<MAX>)
    }
}

struct BytesVisitor<const MAX: usize>;

impl<const MAX: usize> Visitor<'_> for BytesVisitor<MAX> {
    type Value = BoundedBytes<MAX>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at most {MAX} bytes")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        check_len(v.len(), MAX).map_err(E::custom)?;
        Ok(BoundedBytes(v.to_vec()))
    }
}

/// UTF-8 text of at most `MAX` bytes.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BoundedString<const MAX: usize>(String);

impl<const MAX: usize> BoundedString<MAX> {
    /// Wraps `text`, refusing more than `MAX` bytes of it.
    pub fn new(text: String) -> Result<Self, TooLong> {
        check_len(text.len(), MAX)?;
        Ok(Self(text))
    }

    /// Wraps `text`, cutting it at a character boundary to fit `MAX` bytes.
    pub fn truncating(text: &str) -> Self {
        let mut end = text.len().min(MAX);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        Self(text.get(..end).unwrap_or_default().to_owned())
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<const MAX: usize> fmt::Debug for BoundedString<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<const MAX: usize> fmt::Display for BoundedString<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<const MAX: usize> Serialize for BoundedString<MAX> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de, const MAX: usize> Deserialize<'de> for BoundedString<MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(StringVisitor::<MAX>)
    }
}

struct StringVisitor<const MAX: usize>;

impl<const MAX: usize> Visitor<'_> for StringVisitor<MAX> {
    type Value = BoundedString<MAX>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UTF-8 text of at most {MAX} bytes")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        check_len(v.len(), MAX).map_err(E::custom)?;
        Ok(BoundedString(v.to_owned()))
    }
}

/// A sequence of at most `MAX` items.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BoundedVec<T, const MAX: usize>(Vec<T>);

impl<T, const MAX: usize> BoundedVec<T, MAX> {
    /// Wraps `items`, refusing more than `MAX` of them.
    pub fn new(items: Vec<T>) -> Result<Self, TooLong> {
        check_len(items.len(), MAX)?;
        Ok(Self(items))
    }

    /// An empty sequence.
    pub fn empty() -> Self {
        Self(Vec::new())
    }

    /// The first `MAX` of `items`, and the rest: for an answer that pages,
    /// so that nothing over the bound is dropped unseen.
    pub fn take_front(mut items: Vec<T>) -> (Self, Vec<T>) {
        let rest = items.split_off(items.len().min(MAX));
        (Self(items), rest)
    }

    /// The items.
    pub fn as_slice(&self) -> &[T] {
        &self.0
    }

    /// Gives the items back.
    pub fn into_vec(self) -> Vec<T> {
        self.0
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Appends `item`, refusing to grow past `MAX`.
    pub fn push(&mut self, item: T) -> Result<(), TooLong> {
        check_len(self.0.len() + 1, MAX)?;
        self.0.push(item);
        Ok(())
    }

    /// Iterates over the items.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }
}

impl<T, const MAX: usize> Default for BoundedVec<T, MAX> {
    fn default() -> Self {
        Self::empty()
    }
}

impl<T: fmt::Debug, const MAX: usize> fmt::Debug for BoundedVec<T, MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<'a, T, const MAX: usize> IntoIterator for &'a BoundedVec<T, MAX> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<T, const MAX: usize> IntoIterator for BoundedVec<T, MAX> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<T: Serialize, const MAX: usize> Serialize for BoundedVec<T, MAX> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>, const MAX: usize> Deserialize<'de> for BoundedVec<T, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(SeqVisitor::<T, MAX>(PhantomData))
    }
}

struct SeqVisitor<T, const MAX: usize>(PhantomData<T>);

/// Capacity reserved up front, whatever a length prefix claims: a short
/// frame that announces `MAX` items must not make the decoder reserve them.
const PREALLOCATE_AT_MOST: usize = 64;

impl<'de, T: Deserialize<'de>, const MAX: usize> Visitor<'de> for SeqVisitor<T, MAX> {
    type Value = BoundedVec<T, MAX>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a sequence of at most {MAX} items")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let announced = seq.size_hint().unwrap_or(0);
        check_len(announced, MAX).map_err(de::Error::custom)?;
        let mut items = Vec::with_capacity(announced.min(PREALLOCATE_AT_MOST));
        while let Some(item) = seq.next_element()? {
            check_len(items.len() + 1, MAX).map_err(de::Error::custom)?;
            items.push(item);
        }
        Ok(BoundedVec(items))
    }
}

fn check_len(len: usize, max: usize) -> Result<(), TooLong> {
    if len > max {
        return Err(TooLong { len, max });
    }
    Ok(())
}

#[cfg(test)]
mod take_front_tests {
    use super::BoundedVec;

    #[test]
    fn take_front_keeps_the_bound_and_gives_back_the_rest() {
        let (front, rest) = BoundedVec::<u8, 3>::take_front(vec![1, 2, 3, 4, 5]);
        assert_eq!(
            (front.as_slice(), rest.as_slice()),
            (&[1, 2, 3][..], &[4, 5][..])
        );
        let (front, rest) = BoundedVec::<u8, 3>::take_front(vec![1]);
        assert_eq!((front.as_slice(), rest.len()), (&[1][..], 0));
    }
}
