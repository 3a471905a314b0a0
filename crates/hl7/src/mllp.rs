//! MLLP framing: each message travels as `0x0B` (start block), the message, `0x1C 0x0D` (end block
//! and carriage return) (HL7 Minimal Lower Layer Protocol; HL7 v2.x Appendix C, and HL7 Version 3
//! Transport Specification MLLP Release 2 — section number UNVERIFIED; every monitor manual read
//! agrees on the bytes, e.g. GE B40 HL7 Reference Manual 2062665-001 p.18).
//!
//! The decoder never logs what it carries (patient data), bounds how much it buffers, skips bytes
//! before a start block, and yields every complete frame of a read, one at a time.

use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Start block (VT).
pub const START: u8 = 0x0B;
/// End block (FS), followed by [`CR`].
pub const END: u8 = 0x1C;
/// Carriage return after the end block.
pub const CR: u8 = 0x0D;

/// The largest frame accepted by default: 1 MiB (a PCD-01 message of a multi-parameter monitor is
/// a few kilobytes).
pub const DEFAULT_MAX_FRAME: usize = 1 << 20;

/// What can go wrong on the wire.
#[derive(Debug, thiserror::Error)]
pub enum MllpError {
    /// The connection failed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// A frame grew past the limit without an end block.
    #[error("a message longer than {max} bytes without an end block")]
    TooLong {
        /// The limit, bytes.
        max: usize,
    },
}

/// The MLLP codec: frames in, message bytes out; message bytes in, frames out.
#[derive(Debug, Clone)]
pub struct Mllp {
    max: usize,
    /// Where the search for the end block resumes (bytes already searched, after the start block).
    scanned: usize,
}

impl Default for Mllp {
    fn default() -> Mllp {
        Mllp::with_max(DEFAULT_MAX_FRAME)
    }
}

impl Mllp {
    /// A codec refusing frames longer than `max` bytes.
    pub fn with_max(max: usize) -> Mllp {
        Mllp { max, scanned: 1 }
    }
}

impl Decoder for Mllp {
    type Item = BytesMut;
    type Error = MllpError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, MllpError> {
        // Resynchronise on a start block: anything before it is noise between frames.
        match src.iter().position(|&b| b == START) {
            Some(0) => {}
            Some(n) => {
                src.advance(n);
                self.scanned = 1;
            }
            None => {
                src.clear();
                self.scanned = 1;
                return Ok(None);
            }
        }
        let from = self.scanned.saturating_sub(1).max(1);
        if let Some(at) = src[from..].windows(2).position(|w| w == [END, CR]) {
            let end = from + at;
            let mut frame = src.split_to(end + 2);
            frame.truncate(end);
            frame.advance(1);
            self.scanned = 1;
            return Ok(Some(frame));
        }
        self.scanned = src.len();
        if src.len() > self.max {
            src.clear();
            self.scanned = 1;
            return Err(MllpError::TooLong { max: self.max });
        }
        Ok(None)
    }
}

impl Encoder<&[u8]> for Mllp {
    type Error = MllpError;

    fn encode(&mut self, message: &[u8], dst: &mut BytesMut) -> Result<(), MllpError> {
        dst.reserve(message.len() + 3);
        dst.put_u8(START);
        dst.put_slice(message);
        dst.put_slice(&[END, CR]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(codec: &mut Mllp, buffer: &mut BytesMut) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(frame) = codec.decode(buffer).unwrap() {
            out.push(frame.to_vec());
        }
        out
    }

    #[test]
    fn frames_are_cut_at_their_blocks_whatever_the_reads() {
        let mut codec = Mllp::default();
        // Noise, two whole frames in one read, and the start of a third.
        let mut buffer = BytesMut::from(&b"junk\x0bMSH|A\r\x1c\x0d\x0bMSH|B\r\x1c\x0d\x0bMSH|C"[..]);
        assert_eq!(
            frames(&mut codec, &mut buffer),
            [b"MSH|A\r".to_vec(), b"MSH|B\r".to_vec()]
        );
        assert_eq!(&buffer[..], b"\x0bMSH|C");
        // The rest arrives a byte at a time, the end block split across reads.
        for byte in b"\r\x1c\x0d" {
            buffer.put_u8(*byte);
            let got = frames(&mut codec, &mut buffer);
            if *byte == CR && buffer.is_empty() {
                assert_eq!(got, [b"MSH|C\r".to_vec()]);
            }
        }
        assert!(buffer.is_empty());
        // A lone FS inside a message is not an end block; FS CR is.
        let mut buffer = BytesMut::from(&b"\x0bOBX|\x1c|x\r\x1c\x0d"[..]);
        assert_eq!(frames(&mut codec, &mut buffer), [b"OBX|\x1c|x\r".to_vec()]);
    }

    #[test]
    fn a_frame_without_an_end_is_refused_at_the_limit_and_the_next_one_is_read() {
        let mut codec = Mllp::with_max(16);
        let mut buffer = BytesMut::from(&b"\x0b0123456789abcdefXYZ"[..]);
        assert!(matches!(
            codec.decode(&mut buffer),
            Err(MllpError::TooLong { max: 16 })
        ));
        assert!(buffer.is_empty());
        buffer.put_slice(b"\x0bMSH|ok\r\x1c\x0d");
        assert_eq!(frames(&mut codec, &mut buffer), [b"MSH|ok\r".to_vec()]);
    }

    #[test]
    fn encoding_wraps_the_message_in_its_blocks() {
        let mut out = BytesMut::new();
        Mllp::default().encode(&b"MSH|^~\\&|\r"[..], &mut out).unwrap();
        assert_eq!(&out[..], b"\x0bMSH|^~\\&|\r\x1c\x0d");
    }
}
