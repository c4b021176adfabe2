//! Files in a conversation: the attachment message is sent once the sealed file is stored on the
//! relay (so a message never names a blob that is not there), and lands in the log like a text.
//! The transfer itself (upload, download) happens outside the engine, in the browser adapters.

use rand_core::CryptoRng;

use super::{ContactId, Engine, EngineError, MessageKind};
use crate::core::content::AttachmentRef;
use crate::core::{Content, MessageId};

impl Engine {
    /// Encrypts and queues the message announcing a file whose upload completed, and puts it in the
    /// log. The file name is expected sanitised (`core::attachment_ref::sanitize_file_name`); a
    /// field out of form is [`EngineError::Content`].
    pub fn send_attachment(
        &mut self,
        contact: ContactId,
        attachment: AttachmentRef,
        now: u64,
        rng: &mut impl CryptoRng,
    ) -> Result<MessageId, EngineError> {
        let name = attachment.name.clone();
        let attachment = Box::new(attachment);
        let content = Content::Attachment(attachment.clone());
        self.send_message(contact, content, MessageKind::Attachment, name, Some(attachment), now, rng)
    }
}
