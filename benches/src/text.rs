//! Chat-like text for search benchmarks: words of a made-up 30,000-word vocabulary, drawn by
//! Zipf's law (s = 1, as word frequencies in natural language roughly follow), 3 to 24 words
//! a message. Deterministic: message `i` is always the same text.

/// Words in the vocabulary.
pub const VOCABULARY: usize = 30_000;

/// Syllables words are made of (consonant + vowel: any concatenation reads back uniquely).
const CONSONANTS: &[u8] = b"bdfgklmnprstvz";
const VOWELS: &[u8] = b"aeiou";

/// The generator: the vocabulary and its cumulative frequencies.
#[derive(Debug)]
pub struct Chatter {
    words: Vec<String>,
    cumulative: Vec<f64>,
}

impl Default for Chatter {
    fn default() -> Self {
        Self::new()
    }
}

impl Chatter {
    /// The vocabulary, frequent words short.
    pub fn new() -> Chatter {
        let syllables: Vec<[u8; 2]> = CONSONANTS
            .iter()
            .flat_map(|&c| VOWELS.iter().map(move |&v| [c, v]))
            .collect();
        let n = syllables.len();
        let words = (0..VOCABULARY)
            .map(|rank| {
                // Ranks 0..n: one syllable; then two; then three.
                let (mut rest, len) = if rank < n {
                    (rank, 1)
                } else if rank < n + n * n {
                    (rank - n, 2)
                } else {
                    (rank - n - n * n, 3)
                };
                let mut word = String::new();
                for _ in 0..len {
                    let s = syllables[rest % n];
                    word.push(s[0] as char);
                    word.push(s[1] as char);
                    rest /= n;
                }
                word
            })
            .collect();
        let mut total = 0.0;
        let mut cumulative: Vec<f64> = (1..=VOCABULARY)
            .map(|rank| {
                total += 1.0 / rank as f64;
                total
            })
            .collect();
        for c in &mut cumulative {
            *c /= total;
        }
        Chatter { words, cumulative }
    }

    /// The word of frequency rank `rank` (0: the most frequent).
    pub fn word(&self, rank: usize) -> &str {
        &self.words[rank]
    }

    /// Message `i`'s text.
    pub fn message(&self, i: u64) -> String {
        let mut state = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5851_f42d_4c95_7f2d;
        let len = 3 + (splitmix(&mut state) % 22) as usize;
        let mut text = String::new();
        for n in 0..len {
            if n > 0 {
                text.push(' ');
            }
            let u = (splitmix(&mut state) >> 11) as f64 / (1u64 << 53) as f64;
            let rank = self.cumulative.partition_point(|&c| c < u);
            text.push_str(&self.words[rank.min(VOCABULARY - 1)]);
        }
        text
    }
}

/// The next number of a SplitMix64 sequence.
pub fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
