//! Private notes: each operation is a private-scope envelope sealed to
//! the private audience; the note list is their fold in author order.

use cairn_wire::EnvelopeId;

use crate::client::Client;
use crate::error::Error;
use crate::record::{NoteOp, RecordBody};
use crate::state::Note;

/// Most text a note or a post holds, in bytes: what fits in one sealed
/// record (`cairn_crypto::MAX_PLAINTEXT_LEN`) with room for the record's
/// certificate and framing.
pub const MAX_TEXT_LEN: usize = 60 * 1024;

/// Refuses text a person would not mean to save: nothing but whitespace,
/// or more than [`MAX_TEXT_LEN`], said in their terms.
pub(crate) fn check_text(what: &str, text: &str) -> Result<(), Error> {
    if text.trim().is_empty() {
        return Err(Error::Invalid(format!("a {what} needs some text")));
    }
    if text.len() > MAX_TEXT_LEN {
        return Err(Error::Invalid(format!(
            "a {what} holds at most {} KiB of text; this one has {:.1} KiB",
            MAX_TEXT_LEN / 1024,
            text.len() as f64 / 1024.0
        )));
    }
    Ok(())
}

impl Client {
    /// Adds a note; its id is the envelope's.
    pub fn add_note(&mut self, text: &str) -> Result<EnvelopeId, Error> {
        check_text("note", text)?;
        let op = NoteOp::Add {
            text: text.to_owned(),
        };
        self.append_private(RecordBody::Note(op))
    }

    /// Replaces the text of the note `id` (full id or unique prefix).
    pub fn edit_note(&mut self, id: &str, text: &str) -> Result<EnvelopeId, Error> {
        check_text("note", text)?;
        let target = self.resolve_note(id)?;
        let op = NoteOp::Edit {
            target,
            text: text.to_owned(),
        };
        self.append_private(RecordBody::Note(op))?;
        Ok(target)
    }

    /// Removes the note `id` (full id or unique prefix).
    pub fn remove_note(&mut self, id: &str) -> Result<EnvelopeId, Error> {
        let target = self.resolve_note(id)?;
        self.append_private(RecordBody::Note(NoteOp::Remove { target }))?;
        Ok(target)
    }

    /// The notes, oldest first.
    pub fn notes(&self) -> Result<Vec<Note>, Error> {
        Ok(self.state()?.notes)
    }

    /// The note whose id is `id` or starts with it (an unknown or
    /// ambiguous prefix is an error, as for an edit).
    pub fn note(&self, id: &str) -> Result<Note, Error> {
        let id = self.resolve_note(id)?;
        self.notes()?
            .into_iter()
            .find(|n| n.id == id)
            .ok_or_else(|| Error::UnknownNote(id.to_text()))
    }

    /// The note whose id is `id` or starts with it, if exactly one does.
    fn resolve_note(&self, id: &str) -> Result<EnvelopeId, Error> {
        let id = id.trim();
        let matches: Vec<EnvelopeId> = self
            .notes()?
            .into_iter()
            .map(|n| n.id)
            .filter(|n| !id.is_empty() && n.to_text().starts_with(id))
            .collect();
        the_one(id, matches, EnvelopeId::to_text, || {
            Error::UnknownNote(id.to_owned())
        })
    }
}

/// The one match of `given`, or the error for none (`none`) or several
/// (`Error::Ambiguous`, listing them).
pub(crate) fn the_one<T: Copy>(
    given: &str,
    matches: Vec<T>,
    text: impl Fn(&T) -> String,
    none: impl FnOnce() -> Error,
) -> Result<T, Error> {
    match matches.as_slice() {
        [one] => Ok(*one),
        [] => Err(none()),
        many => Err(Error::Ambiguous {
            prefix: given.to_owned(),
            matches: many.iter().map(text).collect(),
        }),
    }
}
