//! One gzip stream made of a large part compressed once per poll and a small part compressed per
//! scrape. The cached part ends with a sync flush (byte-aligned, not final), so the scrape's part
//! can follow it as more deflate blocks; the trailer's CRC is combined from both parts. Clients
//! see a single ordinary gzip member (curl, for one, reads no further than the first member).

use std::io::Write;

use bytes::{BufMut, Bytes, BytesMut};
use flate2::Compression;
use flate2::write::DeflateEncoder;

/// A fixed gzip header: deflate, no name, no mtime, unknown OS.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// The compressed start of a body, with the gzip header already in front.
#[derive(Clone)]
pub struct GzipPrefix {
    bytes: Bytes,
    crc: crc32fast::Hasher,
    len: u64,
}

impl GzipPrefix {
    /// Compressed once per poll and served many times: worth the default level's extra effort.
    pub fn new(data: &[u8]) -> GzipPrefix {
        GzipPrefix::with_level(data, Compression::default())
    }

    /// The same at the fast level, for the first render at start-up, when serving soon matters
    /// more than a few kilobytes.
    pub fn fast(data: &[u8]) -> GzipPrefix {
        GzipPrefix::with_level(data, Compression::fast())
    }

    fn with_level(data: &[u8], level: Compression) -> GzipPrefix {
        let mut out = Vec::with_capacity(HEADER.len() + data.len() / 6);
        out.extend_from_slice(&HEADER);
        let mut encoder = DeflateEncoder::new(out, level);
        encoder.write_all(data).expect("writing to a Vec cannot fail");
        // flush() is a sync flush: it empties the compressor without ending the stream.
        encoder.flush().expect("writing to a Vec cannot fail");
        let bytes = Bytes::from(std::mem::take(encoder.get_mut()));
        let mut crc = crc32fast::Hasher::new();
        crc.update(data);
        GzipPrefix { bytes, crc, len: data.len() as u64 }
    }

    /// The header and the cached blocks: the first chunk of every gzip response.
    pub fn bytes(&self) -> Bytes {
        self.bytes.clone()
    }

    /// The rest of the stream: `tail` compressed as the final blocks, then the trailer.
    pub fn finish(&self, tail: &[u8]) -> Bytes {
        let mut encoder = DeflateEncoder::new(
            BytesMut::with_capacity(tail.len() / 2 + 16).writer(),
            Compression::fast(),
        );
        encoder.write_all(tail).expect("writing to memory cannot fail");
        let mut out = encoder.finish().expect("writing to memory cannot fail").into_inner();
        let mut crc = self.crc.clone();
        crc.update(tail);
        out.extend_from_slice(&crc.finalize().to_le_bytes());
        out.extend_from_slice(&((self.len + tail.len() as u64) as u32).to_le_bytes());
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip_single_member(data: &[u8]) -> Vec<u8> {
        let mut decoder = flate2::read::GzDecoder::new(data);
        let mut out = Vec::new();
        decoder.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn prefix_and_tail_form_one_gzip_member() {
        let head = "wolkvox_gamification_licenses{server=\"0042\"} 12\n".repeat(1000);
        let tail = b"process_open_fds 9\n";
        let prefix = GzipPrefix::new(head.as_bytes());
        let mut body = prefix.bytes().to_vec();
        body.extend_from_slice(&prefix.finish(tail));
        assert_eq!(gunzip_single_member(&body), [head.as_bytes(), tail].concat());
        // The prefix is reusable: a second scrape with another tail decodes too.
        let mut again = prefix.bytes().to_vec();
        again.extend_from_slice(&prefix.finish(b""));
        assert_eq!(gunzip_single_member(&again), head.as_bytes());
    }

    #[test]
    fn empty_prefix_works() {
        let prefix = GzipPrefix::new(b"");
        let mut body = prefix.bytes().to_vec();
        body.extend_from_slice(&prefix.finish(b"x 1\n"));
        assert_eq!(gunzip_single_member(&body), b"x 1\n");
    }
}
