//! Private notes: each operation is a private-scope envelope sealed to
//! the private audience; the note list is their fold in author order.

use cairn_wire::EnvelopeId;

use crate::client::Client;
use crate::error::Error;
use crate::record::{NoteOp, RecordBody};
use crate::state::Note;

impl Client {
    /// Adds a note; its id is the envelope's.
    pub fn add_note(&mut self, text: &str) -> Result<EnvelopeId, Error> {
        let op = NoteOp::Add {
            text: text.to_owned(),
        };
        self.append_private(RecordBody::Note(op))
    }

    /// Replaces the text of the note `id` (full id or unique prefix).
    pub fn edit_note(&mut self, id: &str, text: &str) -> Result<EnvelopeId, Error> {
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

    /// The note whose id is `id` or starts with it, if exactly one does.
    fn resolve_note(&self, id: &str) -> Result<EnvelopeId, Error> {
        let id = id.trim();
        let mut matches = self
            .notes()?
            .into_iter()
            .filter(|n| !id.is_empty() && n.id.to_text().starts_with(id));
        let (Some(note), None) = (matches.next(), matches.next()) else {
            return Err(Error::UnknownNote(id.to_owned()));
        };
        Ok(note.id)
    }
}
