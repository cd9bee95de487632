//! Archive framing: a file is a sequence of independent zstd frames.
//!
//! Each flush of [`ArchiveWriter`] is one complete frame (content size and
//! checksum in it), so a process killed mid-write leaves every earlier frame
//! readable: the file is a readable prefix plus, at worst, one incomplete
//! frame at the end. [`read_archive`] and [`ArchiveReader`] return the
//! prefix and report that tail; damage anywhere else is an [`ArchiveError`],
//! because a crash cannot produce it.
//!
//! Callers write whole records (JSONL lines, packed Cap'n Proto messages), so
//! a frame boundary never splits a record.

use std::fmt;

use zstd::zstd_safe::{self, CCtx, CParameter, DCtx, InBuffer, OutBuffer, ResetDirective};

/// The compression level used when the caller has no opinion.
pub const DEFAULT_LEVEL: i32 = 3;

/// First bytes of every zstd frame (0xFD2FB528, little endian).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
/// Skippable frames: magic 0x184D2A50..=0x184D2A5F, then a u32 length.
const SKIPPABLE_MAGIC_MASK: u32 = 0xFFFF_FFF0;
const SKIPPABLE_MAGIC: u32 = 0x184D_2A50;
const SKIPPABLE_HEADER_LEN: usize = 8;
/// Room over compressBound for header variations of other encoders.
const FRAME_SLACK: usize = 64;
/// Longest incomplete frame accepted when its header states no content size
/// (never the case for frames of ArchiveWriter). Longer is damage, which
/// also caps what ArchiveReader buffers.
const MAX_UNSIZED_FRAME: usize = 1 << 30;

/// Damage that is not a truncated tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveError {
    /// The frame starting at `offset` cannot be read and is not the tail.
    Corrupt { offset: u64, reason: String },
    /// A compression level outside what zstd accepts.
    InvalidLevel(i32),
    /// zstd refused to compress (allocation failure); nothing was lost.
    Compress(String),
}

impl fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArchiveError::Corrupt { offset, reason } => {
                write!(f, "corrupt zstd frame at byte {offset}: {reason}")
            }
            ArchiveError::InvalidLevel(level) => write!(
                f,
                "zstd level {level} is outside {}..={}",
                zstd_safe::min_c_level(),
                zstd_safe::max_c_level()
            ),
            ArchiveError::Compress(reason) => write!(f, "zstd compression failed: {reason}"),
        }
    }
}

impl std::error::Error for ArchiveError {}

/// Collects whole records and turns them into one zstd frame per flush.
///
/// Memory is bounded by what was written since the last flush: the caller
/// flushes by size or by time (and before acking, since only flushed frames
/// are durable once written out).
pub struct ArchiveWriter {
    cctx: CCtx<'static>,
    pending: Vec<u8>,
}

impl ArchiveWriter {
    pub fn new(level: i32) -> Result<ArchiveWriter, ArchiveError> {
        if level < zstd_safe::min_c_level() || level > zstd_safe::max_c_level() {
            return Err(ArchiveError::InvalidLevel(level));
        }
        let mut cctx = CCtx::create();
        let configured = cctx
            .set_parameter(CParameter::CompressionLevel(level))
            .and_then(|_| cctx.set_parameter(CParameter::ChecksumFlag(true)))
            .and_then(|_| cctx.set_parameter(CParameter::ContentSizeFlag(true)));
        configured.map_err(|code| ArchiveError::Compress(error_name(code)))?;
        Ok(ArchiveWriter {
            cctx,
            pending: Vec::new(),
        })
    }

    /// Buffers `bytes`, which must hold whole records.
    pub fn write(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// Bytes written since the last flush.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// One complete frame holding everything written since the last flush;
    /// empty when nothing is pending. On error the pending bytes are kept.
    pub fn flush(&mut self) -> Result<Vec<u8>, ArchiveError> {
        if self.pending.is_empty() {
            return Ok(Vec::new());
        }
        let mut frame = Vec::with_capacity(zstd_safe::compress_bound(self.pending.len()));
        self.cctx
            .compress2(&mut frame, &self.pending)
            .map_err(|code| ArchiveError::Compress(error_name(code)))?;
        self.pending.clear();
        Ok(frame)
    }
}

/// What an archive (or its readable prefix) holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ArchiveContents {
    /// Decompressed content of every complete frame, in order.
    pub data: Vec<u8>,
    /// Complete frames read.
    pub frames: u64,
    /// Length of the readable prefix: the offset where complete frames end.
    pub complete_len: u64,
    /// `(offset, len)` of an incomplete last frame, left by an interrupted write.
    pub truncated_tail: Option<(u64, u64)>,
}

/// Reads a whole archive in memory. See [`ArchiveReader`] for large files.
pub fn read_archive(data: &[u8]) -> Result<ArchiveContents, ArchiveError> {
    let mut out = Vec::new();
    let mut contents = walk_frames(data, &mut out, |_, _| {})?;
    contents.data = out;
    Ok(contents)
}

/// Reads a whole archive frame by frame: `on_frame` gets each complete
/// frame's offset in `data` and its content, decompressed into one reused
/// buffer (so memory stays at one frame's content, warm in cache). The result
/// has no `data`; it says how many frames were read and where a truncated
/// tail starts.
pub fn for_each_frame(
    data: &[u8],
    mut on_frame: impl FnMut(u64, &[u8]),
) -> Result<ArchiveContents, ArchiveError> {
    let mut scratch = Vec::new();
    walk_frames(data, &mut scratch, |offset, content| {
        on_frame(offset, content);
        content.clear();
    })
}

/// The decompressed size of the complete frames at the start of `data`, as
/// their headers state it (a frame stating none, or an implausible size,
/// counts 0): a hint for sizing what the content will fill, not a promise.
pub fn stated_content_len(data: &[u8]) -> usize {
    let mut total = 0usize;
    let mut pos = 0usize;
    while let Ok(len) = zstd_safe::find_frame_compressed_size(&data[pos..]) {
        if len == 0 || len > data.len() - pos {
            break;
        }
        let frame = &data[pos..pos + len];
        total = total.saturating_add(plausible_content_len(frame).unwrap_or(0));
        pos += len;
    }
    total
}

/// The content size a frame's header states, if it is plausible: at most
/// 64 times the frame (ArchiveWriter's frames always state theirs).
fn plausible_content_len(frame: &[u8]) -> Option<usize> {
    let stated = match zstd_safe::get_frame_content_size(frame) {
        Ok(Some(size)) => usize::try_from(size).ok()?,
        _ => return None,
    };
    let limit = frame.len().saturating_mul(64).min(1 << 28);
    (stated <= limit).then_some(stated)
}

/// Decodes every complete frame of `data`, appending to `out`; after each,
/// `after_frame` gets the frame's offset and `out` (which it may drain).
fn walk_frames(
    data: &[u8],
    out: &mut Vec<u8>,
    mut after_frame: impl FnMut(u64, &mut Vec<u8>),
) -> Result<ArchiveContents, ArchiveError> {
    let mut decoder = FrameDecoder::new();
    let mut contents = ArchiveContents::default();
    let mut pos = 0usize;
    while pos < data.len() {
        let offset = pos as u64;
        match decoder.next_frame(&data[pos..], offset, out)? {
            Step::Frame(len) => {
                pos += len;
                contents.frames += 1;
                after_frame(offset, out);
            }
            Step::NeedMore => {
                decoder.check_is_tail(&data[pos..], offset)?;
                contents.truncated_tail = Some((offset, (data.len() - pos) as u64));
                break;
            }
        }
    }
    contents.complete_len = pos as u64;
    Ok(contents)
}

/// Push-style reader: feed chunks of a file, take decompressed content as
/// frames complete. It buffers at most one incomplete frame plus the content
/// not yet taken, so take after each feed.
pub struct ArchiveReader {
    decoder: FrameDecoder,
    /// Bytes of the current incomplete frame; its first byte is at `buf_offset`.
    buf: Vec<u8>,
    buf_offset: u64,
    out: Vec<u8>,
    frames: u64,
    failed: Option<ArchiveError>,
}

impl Default for ArchiveReader {
    fn default() -> Self {
        ArchiveReader::new()
    }
}

impl ArchiveReader {
    pub fn new() -> ArchiveReader {
        ArchiveReader {
            decoder: FrameDecoder::new(),
            buf: Vec::new(),
            buf_offset: 0,
            out: Vec::new(),
            frames: 0,
            failed: None,
        }
    }

    /// Adds the next bytes of the archive and decodes every frame they complete.
    /// After an error the reader stays failed with that error.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), ArchiveError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let result = if self.buf.is_empty() {
            // Decode straight from the chunk; copy only an incomplete rest.
            self.decode_from(chunk).map(|used| {
                self.buf.extend_from_slice(&chunk[used..]);
            })
        } else {
            let mut buf = std::mem::take(&mut self.buf);
            buf.extend_from_slice(chunk);
            let result = self.decode_from(&buf);
            if let Ok(used) = result {
                buf.drain(..used);
            }
            self.buf = buf;
            result.map(|_| ())
        };
        if let Err(err) = &result {
            self.failed = Some(err.clone());
        }
        result
    }

    /// Decompressed content of the frames completed since the last take.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Ends the input: content not yet taken, frame count, readable prefix and tail.
    pub fn finish(mut self) -> Result<ArchiveContents, ArchiveError> {
        if let Some(err) = self.failed {
            return Err(err);
        }
        let truncated_tail = if self.buf.is_empty() {
            None
        } else {
            self.decoder.check_is_tail(&self.buf, self.buf_offset)?;
            Some((self.buf_offset, self.buf.len() as u64))
        };
        Ok(ArchiveContents {
            data: self.out,
            frames: self.frames,
            complete_len: self.buf_offset,
            truncated_tail,
        })
    }

    /// Decodes the complete frames at the start of `data` (which begins at
    /// `buf_offset`); returns how many bytes they took.
    fn decode_from(&mut self, data: &[u8]) -> Result<usize, ArchiveError> {
        let mut pos = 0usize;
        while pos < data.len() {
            let offset = self.buf_offset + pos as u64;
            match self
                .decoder
                .next_frame(&data[pos..], offset, &mut self.out)?
            {
                Step::Frame(len) => {
                    pos += len;
                    self.frames += 1;
                }
                Step::NeedMore => break,
            }
        }
        self.buf_offset += pos as u64;
        Ok(pos)
    }
}

enum Step {
    /// A complete frame of this many bytes was decoded.
    Frame(usize),
    /// The input ends inside a frame that may still be completed.
    NeedMore,
}

/// One decompression context reused for every frame.
struct FrameDecoder {
    dctx: DCtx<'static>,
}

impl FrameDecoder {
    fn new() -> FrameDecoder {
        FrameDecoder {
            dctx: DCtx::create(),
        }
    }

    /// Decodes the frame at the start of `data` (non-empty) into `out`.
    fn next_frame(
        &mut self,
        data: &[u8],
        offset: u64,
        out: &mut Vec<u8>,
    ) -> Result<Step, ArchiveError> {
        let corrupt = |reason: String| ArchiveError::Corrupt { offset, reason };
        match zstd_safe::find_frame_compressed_size(data) {
            Ok(len) if len > 0 && len <= data.len() => {
                let before = out.len();
                if let Err(reason) = self.decode_frame(&data[..len], out) {
                    out.truncate(before);
                    return Err(corrupt(reason));
                }
                Ok(Step::Frame(len))
            }
            Ok(len) => Err(corrupt(format!("frame size {len} is impossible"))),
            Err(code) if is_truncation(code) => {
                // A frame whose bytes already exceed what it could ever take
                // is not waiting for more input: its lengths are damaged.
                let limit = max_frame_len(data);
                if data.len() > limit {
                    Err(corrupt(format!(
                        "frame runs past {limit} bytes, the most its header allows"
                    )))
                } else {
                    Ok(Step::NeedMore)
                }
            }
            Err(code) => Err(corrupt(error_name(code))),
        }
    }

    /// An incomplete frame is the tail of an interrupted write only if no
    /// complete frame starts inside it; otherwise a damaged length made a
    /// frame in the middle look unfinished.
    fn check_is_tail(&mut self, rest: &[u8], offset: u64) -> Result<(), ArchiveError> {
        let mut scratch = Vec::new();
        let mut start = 1usize;
        while let Some(found) = find_magic(&rest[start.min(rest.len())..]) {
            let at = start + found;
            let candidate = &rest[at..];
            if let Ok(len) = zstd_safe::find_frame_compressed_size(candidate) {
                scratch.clear();
                let whole = len > 0 && len <= candidate.len();
                if whole && self.decode_frame(&candidate[..len], &mut scratch).is_ok() {
                    return Err(ArchiveError::Corrupt {
                        offset,
                        reason: format!(
                            "unreadable frame followed by a complete frame at byte {}",
                            offset + at as u64
                        ),
                    });
                }
            }
            start = at + 1;
        }
        Ok(())
    }

    /// Decodes one frame into `out`. A frame that states a plausible content
    /// size is decoded in one call straight into `out`; others are streamed, so that
    /// output grows with what is actually decoded and a damaged size cannot
    /// force a huge allocation.
    fn decode_frame(&mut self, frame: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        match plausible_content_len(frame) {
            Some(size) => self.decode_sized(frame, size, out),
            None => self.decode_streaming(frame, out),
        }
    }

    fn decode_sized(&mut self, frame: &[u8], size: usize, out: &mut Vec<u8>) -> Result<(), String> {
        let start = out.len();
        out.reserve(size);
        let mut cursor = std::io::Cursor::new(&mut *out);
        cursor.set_position(start as u64);
        // One-shot decompression checks the content size and the checksum.
        let written = self
            .dctx
            .decompress(&mut cursor, frame)
            .map_err(error_name)?;
        if written != size {
            out.truncate(start);
            return Err(format!(
                "frame holds {written} bytes, its header says {size}"
            ));
        }
        Ok(())
    }

    fn decode_streaming(&mut self, frame: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        self.dctx
            .reset(ResetDirective::SessionOnly)
            .map_err(error_name)?;
        let mut input = InBuffer::around(frame);
        loop {
            out.reserve(DCtx::out_size());
            let start = out.len();
            let in_before = input.pos();
            let mut output = OutBuffer::around_pos(out, start);
            let hint = self
                .dctx
                .decompress_stream(&mut output, &mut input)
                .map_err(error_name)?;
            let produced = output.pos() - start;
            if hint == 0 {
                // The frame is done; find_frame_compressed_size said where it ends.
                return if input.pos() == frame.len() {
                    Ok(())
                } else {
                    Err("frame ended before its stated length".to_string())
                };
            }
            if produced == 0 && input.pos() == in_before {
                return Err("frame ended early".to_string());
            }
        }
    }
}

/// Whether a zstd error means "the input stops inside this frame".
fn is_truncation(code: usize) -> bool {
    // SAFETY: ZSTD_getErrorCode only classifies the integer it is given.
    let kind = unsafe { zstd_safe::zstd_sys::ZSTD_getErrorCode(code) };
    kind == zstd_safe::zstd_sys::ZSTD_ErrorCode::ZSTD_error_srcSize_wrong
}

/// The most bytes the frame starting at `head` can occupy.
fn max_frame_len(head: &[u8]) -> usize {
    if let Some(magic) = read_u32_le(head, 0) {
        if magic & SKIPPABLE_MAGIC_MASK == SKIPPABLE_MAGIC {
            return match read_u32_le(head, 4) {
                Some(len) => SKIPPABLE_HEADER_LEN.saturating_add(len as usize),
                None => SKIPPABLE_HEADER_LEN,
            };
        }
    }
    let content = match zstd_safe::get_frame_content_size(head) {
        Ok(Some(size)) => usize::try_from(size).ok(),
        _ => None,
    };
    let bound = content.map(zstd_safe::compress_bound).filter(|b| *b > 0);
    match bound {
        Some(bound) => bound.saturating_add(FRAME_SLACK),
        None => MAX_UNSIZED_FRAME,
    }
}

fn read_u32_le(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at.checked_add(4)?)?;
    let mut word = [0u8; 4];
    word.copy_from_slice(bytes);
    Some(u32::from_le_bytes(word))
}

fn find_magic(data: &[u8]) -> Option<usize> {
    data.windows(ZSTD_MAGIC.len())
        .position(|window| window == ZSTD_MAGIC)
}

fn error_name(code: usize) -> String {
    zstd_safe::get_error_name(code).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lines(n: usize, tag: &str) -> Vec<u8> {
        (0..n)
            .map(|i| format!("{{\"ts\":{i},\"type\":\"{tag}\",\"data\":{{\"seq\":{i}}}}}\n"))
            .collect::<String>()
            .into_bytes()
    }

    /// An archive of `parts`, one frame each, and the frame offsets.
    fn archive(parts: &[Vec<u8>]) -> (Vec<u8>, Vec<usize>) {
        let mut writer = ArchiveWriter::new(DEFAULT_LEVEL).expect("level");
        let mut file = Vec::new();
        let mut starts = Vec::new();
        for part in parts {
            writer.write(part);
            assert_eq!(writer.pending_len(), part.len());
            starts.push(file.len());
            file.extend(writer.flush().expect("flush"));
            assert_eq!(writer.pending_len(), 0);
        }
        (file, starts)
    }

    #[test]
    fn frame_by_frame_reading_matches_reading_whole() {
        let parts = vec![
            lines(200, "trade"),
            lines(1, "ticker"),
            lines(3000, "delta"),
        ];
        let (file, starts) = archive(&parts);
        let cut = &file[..file.len() - 3];
        let mut seen = Vec::new();
        let contents = for_each_frame(cut, |offset, content| seen.push((offset, content.to_vec())))
            .expect("a truncated tail is not an error");
        let expected: Vec<(u64, Vec<u8>)> = starts[..2]
            .iter()
            .zip(&parts)
            .map(|(start, part)| (*start as u64, part.clone()))
            .collect();
        assert_eq!(seen, expected);
        assert!(contents.data.is_empty());
        let whole = read_archive(cut).expect("read");
        assert_eq!(contents.frames, whole.frames);
        assert_eq!(contents.truncated_tail, whole.truncated_tail);
        assert_eq!(
            contents.truncated_tail,
            Some((starts[2] as u64, (cut.len() - starts[2]) as u64))
        );
    }

    #[test]
    fn stated_content_len_sums_complete_frames() {
        let parts = vec![lines(200, "trade"), lines(50, "ticker")];
        let (file, starts) = archive(&parts);
        assert_eq!(stated_content_len(&file), parts[0].len() + parts[1].len());
        assert_eq!(stated_content_len(&file[..file.len() - 1]), parts[0].len());
        assert_eq!(stated_content_len(&file[..starts[1]]), parts[0].len());
        assert_eq!(stated_content_len(b"not zstd"), 0);
        assert_eq!(stated_content_len(&[]), 0);
    }

    fn read_incrementally(data: &[u8], chunk: usize) -> Result<ArchiveContents, ArchiveError> {
        let mut reader = ArchiveReader::new();
        let mut taken = Vec::new();
        for piece in data.chunks(chunk.max(1)) {
            reader.feed(piece)?;
            taken.extend(reader.take());
        }
        let mut contents = reader.finish()?;
        taken.extend(std::mem::take(&mut contents.data));
        contents.data = taken;
        Ok(contents)
    }

    #[test]
    fn round_trips_frames_in_order() {
        let parts = vec![
            lines(10, "trade"),
            lines(1, "ticker"),
            lines(500, "orderbook"),
        ];
        let (file, _) = archive(&parts);
        let contents = read_archive(&file).expect("read");
        assert_eq!(contents.data, parts.concat());
        assert_eq!(contents.frames, 3);
        assert_eq!(contents.complete_len, file.len() as u64);
        assert_eq!(contents.truncated_tail, None);
    }

    #[test]
    fn frames_state_their_content_size() {
        let (file, _) = archive(&[lines(7, "x")]);
        assert_eq!(
            zstd_safe::get_frame_content_size(&file).ok(),
            Some(Some(lines(7, "x").len() as u64))
        );
    }

    #[test]
    fn empty_flush_and_empty_archive() {
        let mut writer = ArchiveWriter::default_level();
        assert_eq!(writer.flush().expect("flush"), Vec::<u8>::new());
        assert_eq!(read_archive(&[]).expect("read"), ArchiveContents::default());
    }

    #[test]
    fn rejects_levels_zstd_does_not_have() {
        assert_eq!(
            ArchiveWriter::new(99).err(),
            Some(ArchiveError::InvalidLevel(99))
        );
    }

    #[test]
    fn every_cut_of_the_last_frame_keeps_the_prefix() {
        let parts = vec![lines(20, "a"), lines(30, "b"), lines(40, "c")];
        let (file, starts) = archive(&parts);
        let last = starts[2];
        for cut in last..file.len() {
            let contents = read_archive(&file[..cut]).expect("truncated tail is not an error");
            assert_eq!(contents.data, parts[..2].concat(), "cut at {cut}");
            assert_eq!(contents.frames, 2);
            assert_eq!(contents.complete_len, last as u64);
            let tail = (cut > last).then(|| (last as u64, (cut - last) as u64));
            assert_eq!(contents.truncated_tail, tail, "cut at {cut}");
            assert_eq!(
                read_incrementally(&file[..cut], 7).expect("incremental"),
                contents
            );
        }
    }

    #[test]
    fn damage_in_a_middle_frame_is_an_error() {
        let parts = vec![lines(20, "a"), lines(30, "b"), lines(40, "c")];
        let (file, starts) = archive(&parts);
        // Flip a byte in the middle of the second frame's compressed data.
        let mut bad = file.clone();
        let at = (starts[1] + starts[2]) / 2;
        bad[at] ^= 0xFF;
        let err = read_archive(&bad).expect_err("damage");
        assert!(matches!(err, ArchiveError::Corrupt { offset, .. } if offset == starts[1] as u64));
        assert!(read_incrementally(&bad, 5).is_err());
        // A destroyed header is damage too.
        let mut bad = file.clone();
        bad[starts[1]] = 0;
        let err = read_archive(&bad).expect_err("damage");
        assert!(matches!(err, ArchiveError::Corrupt { offset, .. } if offset == starts[1] as u64));
    }

    #[test]
    fn a_missing_middle_chunk_is_an_error_not_a_tail() {
        let parts = vec![lines(20, "a"), lines(30, "b"), lines(5, "c")];
        let (file, starts) = archive(&parts);
        // Drop the end of frame 1: frame 2 then starts inside what frame 1 claims.
        let mut bad = file[..starts[2] - 10].to_vec();
        bad.extend_from_slice(&file[starts[2]..]);
        let err = read_archive(&bad).expect_err("damage");
        assert!(matches!(err, ArchiveError::Corrupt { offset, .. } if offset == starts[1] as u64));
        assert!(read_incrementally(&bad, 3).is_err());
    }

    #[test]
    fn garbage_after_the_last_frame_is_an_error() {
        let (mut file, _) = archive(&[lines(3, "a")]);
        file.extend_from_slice(b"not zstd at all");
        assert!(read_archive(&file).is_err());
    }

    #[test]
    fn reader_stays_failed() {
        let mut reader = ArchiveReader::new();
        assert!(reader.feed(b"garbage!").is_err());
        assert!(reader.feed(&[]).is_err());
        assert!(reader.finish().is_err());
    }

    impl ArchiveWriter {
        fn default_level() -> ArchiveWriter {
            ArchiveWriter::new(DEFAULT_LEVEL).expect("level")
        }
    }

    proptest! {
        #[test]
        fn incremental_equals_one_shot(
            sizes in proptest::collection::vec(0usize..200, 1..6),
            chunk in 1usize..300,
            cut_frac in 0.0f64..=1.0,
        ) {
            let parts: Vec<Vec<u8>> = sizes.iter().enumerate()
                .map(|(i, n)| lines(*n, &i.to_string())).collect();
            let (file, _) = archive(&parts);
            let cut = ((file.len() as f64) * cut_frac) as usize;
            let one_shot = read_archive(&file[..cut]).expect("prefix is readable");
            let incremental = read_incrementally(&file[..cut], chunk).expect("prefix is readable");
            prop_assert_eq!(&one_shot, &incremental);
            let expected_prefix = parts.concat();
            prop_assert!(expected_prefix.starts_with(&one_shot.data));
        }

        /// Damaged archives never panic, and one-shot and incremental reads
        /// agree on whether the damage is an error.
        #[test]
        fn damaged_archives_are_handled(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
            chunk in 1usize..100,
        ) {
            let (mut file, _) = archive(&[lines(30, "a"), lines(30, "b"), lines(30, "c")]);
            for (at, mask) in flips {
                let i = at.index(file.len());
                file[i] ^= mask;
            }
            let one_shot = read_archive(&file);
            let incremental = read_incrementally(&file, chunk);
            prop_assert_eq!(one_shot.is_ok(), incremental.is_ok());
            if let (Ok(a), Ok(b)) = (one_shot, incremental) {
                prop_assert_eq!(a, b);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(blob in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = read_archive(&blob);
            let _ = read_incrementally(&blob, 13);
        }
    }
}
