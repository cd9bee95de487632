//! Cap'n Proto's packed encoding, both ways: a hot step of writing and of
//! reading normalized records.
//!
//! Packing turns each 8-byte word into a tag byte (bit k set = byte k is
//! non-zero) followed by the non-zero bytes; tag 0x00 is followed by a count
//! of further zero words, tag 0xFF by a count of words copied verbatim.
//! Dropping or restoring a word's zero bytes is a byte shuffle: on x86-64 one
//! SSSE3 instruction per word (and POPCNT for the tag's byte count),
//! elsewhere a loop over a precomputed table. [`pack_into`] writes exactly
//! the bytes the capnp crate's packer writes.

use crate::codec::CodecError;
use capnp::Word;

/// For each tag, where each output byte comes from among the bytes that
/// follow the tag; 0x80 means "zero" (the value PSHUFB reads as such): the
/// shuffle that unpacks a word.
const SHUFFLE: [[u8; 8]; 256] = TABLES.0;
/// For each tag, the positions of the non-zero bytes in order, then 0x80:
/// the shuffle that packs a word.
const COMPRESS: [[u8; 8]; 256] = TABLES.1;
const TABLES: ([[u8; 8]; 256], [[u8; 8]; 256]) = shuffle_tables();

const fn shuffle_tables() -> ([[u8; 8]; 256], [[u8; 8]; 256]) {
    let mut unpack = [[0x80u8; 8]; 256];
    let mut pack = [[0x80u8; 8]; 256];
    let mut tag = 0;
    while tag < 256 {
        let mut next = 0;
        let mut k = 0;
        while k < 8 {
            if (tag >> k) & 1 == 1 {
                unpack[tag][k] = next as u8;
                pack[tag][next] = k as u8;
                next += 1;
            }
            k += 1;
        }
        tag += 1;
    }
    (unpack, pack)
}

/// Which bytes of a word are non-zero, as a tag.
#[inline(always)]
fn tag_of(word: [u8; 8]) -> u8 {
    (0..8).fold(0u8, |tag, k| tag | (u8::from(word[k] != 0) << k))
}

#[inline(always)]
fn shuffle_portable(order: &[u8; 8], src: [u8; 8]) -> [u8; 8] {
    let mut word = [0u8; 8];
    for k in 0..8 {
        let from = order[k];
        word[k] = if from & 0x80 == 0 {
            src[from as usize]
        } else {
            0
        };
    }
    word
}

#[inline(always)]
fn expand_portable(tag: u8, src: [u8; 8]) -> [u8; 8] {
    shuffle_portable(&SHUFFLE[tag as usize], src)
}

#[inline(always)]
fn compress_portable(tag: u8, word: [u8; 8]) -> [u8; 8] {
    shuffle_portable(&COMPRESS[tag as usize], word)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "ssse3")]
#[inline]
fn shuffle_ssse3(order: &[u8; 8], src: [u8; 8]) -> [u8; 8] {
    use std::arch::x86_64::{_mm_cvtsi128_si64, _mm_cvtsi64_si128, _mm_shuffle_epi8};
    let order = _mm_cvtsi64_si128(i64::from_le_bytes(*order));
    let bytes = _mm_cvtsi64_si128(i64::from_le_bytes(src));
    _mm_cvtsi128_si64(_mm_shuffle_epi8(bytes, order)).to_le_bytes()
}

/// `tag_of` in three SSE2 instructions.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
#[inline]
fn tag_sse2(word: [u8; 8]) -> u8 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_cvtsi64_si128, _mm_movemask_epi8, _mm_setzero_si128,
    };
    let zeros = _mm_movemask_epi8(_mm_cmpeq_epi8(
        _mm_cvtsi64_si128(i64::from_le_bytes(word)),
        _mm_setzero_si128(),
    ));
    !(zeros as u8)
}

/// Unpacks a stream of packed messages into the start of `words` and returns
/// its length in bytes: the standard (unpacked) stream, word-aligned so that
/// messages can be read in place. Packing works word by word and never spans
/// messages, so the whole stream unpacks in one pass. `words` is the caller's
/// scratch: it keeps its length between calls, so reused memory stays mapped
/// and warm, and every word up to the returned length is written.
pub fn unpack_into(data: &[u8], words: &mut Vec<Word>) -> Result<usize, CodecError> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("ssse3") && std::arch::is_x86_feature_detected!("popcnt")
    {
        // SAFETY: the CPU has SSSE3 and POPCNT (checked just above).
        return unsafe { unpack_ssse3(data, words) };
    }
    unpack_with(data, words, expand_portable)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "ssse3,popcnt")]
fn unpack_ssse3(data: &[u8], words: &mut Vec<Word>) -> Result<usize, CodecError> {
    unpack_with(data, words, |tag, src| {
        shuffle_ssse3(&SHUFFLE[tag as usize], src)
    })
}

#[inline(always)]
fn unpack_with(
    data: &[u8],
    words: &mut Vec<Word>,
    expand: impl Fn(u8, [u8; 8]) -> [u8; 8],
) -> Result<usize, CodecError> {
    let truncated = |at: usize| CodecError {
        offset: at,
        reason: "packed stream ends mid-word".into(),
    };
    // Packed records rarely unpack to more than twice their size; the loop grows it.
    let mut capacity = words.len().max(data.len() / 4 + 1);
    if words.len() < capacity {
        *words = Word::allocate_zeroed_vec(capacity);
    }
    let mut o = 0; // output byte offset
    let mut i = 0;
    while i < data.len() {
        let tag = data[i];
        i += 1;
        let present = tag.count_ones() as usize;
        if i + present > data.len() {
            return Err(truncated(i));
        }
        let mut src = [0u8; 8];
        if i + 8 <= data.len() {
            src.copy_from_slice(&data[i..i + 8]);
        } else {
            src[..present].copy_from_slice(&data[i..i + present]);
        }
        i += present;
        let (zeros, raw) = match tag {
            0x00 | 0xFF => {
                let count = usize::from(*data.get(i).ok_or_else(|| truncated(i))?);
                i += 1;
                if tag == 0x00 {
                    (count, 0)
                } else {
                    (0, count)
                }
            }
            _ => (0, 0),
        };
        let needed = o + 8 * (1 + zeros + raw);
        if needed > capacity * 8 {
            capacity = (needed / 8).max(capacity * 2);
            let mut bigger = Word::allocate_zeroed_vec(capacity);
            Word::words_to_bytes_mut(&mut bigger)[..o]
                .copy_from_slice(&Word::words_to_bytes(words)[..o]);
            *words = bigger;
        }
        let out = Word::words_to_bytes_mut(words);
        out[o..o + 8].copy_from_slice(&expand(tag, src));
        o += 8;
        if zeros > 0 {
            out[o..o + 8 * zeros].fill(0);
            o += 8 * zeros;
        }
        if raw > 0 {
            let run = data.get(i..i + raw * 8).ok_or_else(|| truncated(i))?;
            out[o..o + run.len()].copy_from_slice(run);
            o += run.len();
            i += run.len();
        }
    }
    Ok(o)
}

/// Appends `words` (whole words, such as a segment) packed to `out`, with
/// the capnp crate's choices: a zero word counts the zero words after it, a
/// full word copies the following words that have at most one zero byte
/// (where packing stops paying), both up to 255.
pub fn pack_into(words: &[u8], out: &mut Vec<u8>) {
    debug_assert!(words.len() % 8 == 0, "packing takes whole words");
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("ssse3") && std::arch::is_x86_feature_detected!("popcnt")
    {
        // SAFETY: the CPU has SSSE3 and POPCNT (checked just above).
        return unsafe { pack_ssse3(words, out) };
    }
    pack_with(words, out, tag_of, compress_portable)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "ssse3,popcnt")]
fn pack_ssse3(words: &[u8], out: &mut Vec<u8>) {
    pack_with(
        words,
        out,
        |word| tag_sse2(word),
        |tag, word| shuffle_ssse3(&COMPRESS[tag as usize], word),
    )
}

#[inline(always)]
fn pack_with(
    words: &[u8],
    out: &mut Vec<u8>,
    tag_of: impl Fn([u8; 8]) -> u8,
    compress: impl Fn(u8, [u8; 8]) -> [u8; 8],
) {
    let word_at = |i: usize| -> [u8; 8] {
        let mut word = [0u8; 8];
        word.copy_from_slice(&words[i * 8..i * 8 + 8]);
        word
    };
    let count = words.len() / 8;
    let start = out.len();
    // At most 10 bytes per word (tag, 8 bytes, run count), plus room for the
    // whole-word store of the last word's bytes.
    out.resize(start + count * 10 + 8, 0);
    let buf = &mut out[start..];
    let mut o = 0;
    let mut i = 0;
    while i < count {
        let word = word_at(i);
        i += 1;
        let tag = tag_of(word);
        buf[o] = tag;
        buf[o + 1..o + 9].copy_from_slice(&compress(tag, word));
        o += 1 + tag.count_ones() as usize;
        if tag == 0x00 {
            let run = (i..count.min(i + 255))
                .take_while(|&j| word_at(j) == [0; 8])
                .count();
            buf[o] = run as u8;
            o += 1;
            i += run;
        } else if tag == 0xFF {
            let run = (i..count.min(i + 255))
                .take_while(|&j| tag_of(word_at(j)).count_ones() >= 7)
                .count();
            buf[o] = run as u8;
            o += 1;
            buf[o..o + run * 8].copy_from_slice(&words[i * 8..(i + run) * 8]);
            o += run * 8;
            i += run;
        }
    }
    out.truncate(start + o);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Packs `segment` (whole words) as the encoding's specification says:
    /// a zero word is followed by the count of further zero words, a full
    /// word by the count of following words copied verbatim (here: those
    /// with at most one zero byte, as the reference encoder chooses).
    fn packed(segment: &[u8]) -> Vec<u8> {
        let words: Vec<[u8; 8]> = segment
            .chunks_exact(8)
            .map(|c| c.try_into().expect("8 bytes"))
            .collect();
        let nonzero = |w: &[u8; 8]| w.iter().filter(|b| **b != 0).count();
        let mut out = Vec::new();
        let mut i = 0;
        while i < words.len() {
            let word = words[i];
            let tag = (0..8).fold(0u8, |t, k| t | (u8::from(word[k] != 0) << k));
            out.push(tag);
            out.extend(word.iter().filter(|b| **b != 0));
            i += 1;
            if tag == 0x00 {
                let run = words[i..]
                    .iter()
                    .take(255)
                    .take_while(|w| nonzero(w) == 0)
                    .count();
                out.push(run as u8);
                i += run;
            } else if tag == 0xFF {
                let run = words[i..]
                    .iter()
                    .take(255)
                    .take_while(|w| nonzero(w) >= 7)
                    .count();
                out.push(run as u8);
                out.extend(words[i..i + run].iter().flatten());
                i += run;
            }
        }
        out
    }

    fn unpacked(data: &[u8]) -> Result<Vec<u8>, CodecError> {
        let mut words = Vec::new();
        let len = unpack_into(data, &mut words)?;
        Ok(Word::words_to_bytes(&words)[..len].to_vec())
    }

    #[test]
    fn every_tag_shuffles_as_the_tables_say() {
        for tag in 0..=255u8 {
            let src = [1, 2, 3, 4, 5, 6, 7, 8];
            let mut expected = [0u8; 8];
            let mut next = 0;
            for (k, byte) in expected.iter_mut().enumerate() {
                if tag >> k & 1 == 1 {
                    *byte = src[next];
                    next += 1;
                }
            }
            assert_eq!(expand_portable(tag, src), expected, "tag {tag:#04x}");
            assert_eq!(&compress_portable(tag, expected)[..next], &src[..next]);
            assert_eq!(tag_of(expected), tag);
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("ssse3") {
                // SAFETY: SSSE3 (and so SSE2) is present.
                let ssse3 = unsafe { shuffle_ssse3(&SHUFFLE[tag as usize], src) };
                assert_eq!(ssse3, expected, "tag {tag:#04x}");
                // SAFETY: as above.
                let packed = unsafe { shuffle_ssse3(&COMPRESS[tag as usize], expected) };
                assert_eq!(&packed[..next], &src[..next], "tag {tag:#04x}");
                // SAFETY: as above.
                let tag_found = unsafe { tag_sse2(expected) };
                assert_eq!(tag_found, tag, "tag {tag:#04x}");
            }
        }
    }

    proptest! {
        /// Words with many zero bytes, zero words and runs of full words, as
        /// records have; the unpacked stream is the original, and scratch
        /// reused from a longer stream does not leak into a shorter one.
        #[test]
        fn unpacking_inverts_packing(
            words in proptest::collection::vec(
                prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>(), (0u64..256), any::<u32>().prop_map(u64::from)],
                0..600,
            ),
        ) {
            let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            let mut scratch = Vec::new();
            let long: Vec<u8> = (0..9000u32).map(|v| (v % 251) as u8 + 1).collect();
            unpack_into(&packed(&long), &mut scratch).expect("long stream");
            let len = unpack_into(&packed(&bytes), &mut scratch).expect("unpack");
            prop_assert_eq!(&Word::words_to_bytes(&scratch)[..len], &bytes[..]);
            prop_assert_eq!(&unpacked(&packed(&bytes)).expect("unpack"), &bytes);
            let mut ours = vec![7u8];
            pack_into(&bytes, &mut ours);
            prop_assert_eq!(&ours[1..], &packed(&bytes)[..]);
            let mut portable = Vec::new();
            pack_with(&bytes, &mut portable, tag_of, compress_portable);
            prop_assert_eq!(portable, packed(&bytes));
        }

        /// Any prefix of a packed stream unpacks or reports truncation; never panics.
        #[test]
        fn truncated_streams_are_errors_not_panics(
            words in proptest::collection::vec(any::<u64>(), 1..50),
            cut in any::<prop::sample::Index>(),
        ) {
            let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            let data = packed(&bytes);
            let _ = unpacked(&data[..cut.index(data.len())]);
        }
    }
}
