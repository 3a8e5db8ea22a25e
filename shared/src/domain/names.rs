use std::fmt;

use crate::domain::error::{Error, ErrorCode, Result};

/// A username: 1–64 characters from `A-Z a-z 0-9 . _ -`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

impl UserName {
    /// The characters a username may use, for error messages and docs.
    pub const RULE: &'static str = "1-64 characters from A-Z, a-z, 0-9, '.', '_' and '-'";

    /// Validates a username.
    pub fn parse(s: &str) -> Result<Self> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(UserName(s.to_owned()))
        } else {
            Err(Error::invalid(ErrorCode::InvalidUsername, format!("username must be {}", Self::RULE)))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password: 8–1024 characters without NUL. Characters, not bytes, so the
/// rule reads the same in the OpenAPI schema (JSON Schema counts characters).
pub struct Password(String);

impl Password {
    /// Validates a password.
    pub fn parse(s: &str) -> Result<Self> {
        if !(8..=1024).contains(&s.chars().count()) {
            return Err(Error::invalid(ErrorCode::InvalidPassword, "password must be 8-1024 characters long"));
        }
        if s.contains('\0') {
            return Err(Error::invalid(ErrorCode::InvalidPassword, "password must not contain NUL bytes"));
        }
        Ok(Password(s.to_owned()))
    }

    /// The secret itself; only the hasher should read it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// A validated string newtype: its text, and `Display` as that text.
macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            /// The normalised text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// A hex digest of `$len` characters, normalised to lowercase (input may be
/// upper case); anything else is a 400 with `$code`.
macro_rules! hex_digest {
    ($(#[$doc:meta])* $name:ident, $len:literal, $code:expr, $message:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            /// Validates and normalises a hex digest.
            pub fn parse(s: &str) -> Result<Self> {
                if s.len() == $len && s.bytes().all(|b| b.is_ascii_hexdigit()) {
                    Ok($name(s.to_ascii_lowercase()))
                } else {
                    Err(Error::invalid($code, $message))
                }
            }
        }

        string_newtype!($name);
    };
}

/// A server-made id: 128 random bits as 32 lowercase hex characters.
/// Anything malformed a client sends names nothing (`$unknown`), like an
/// id that does not exist or is someone else's.
macro_rules! server_id {
    ($(#[$doc:meta])* $name:ident, $unknown:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            /// A fresh random id.
            pub fn generate() -> Self {
                $name(crate::random_hex(16))
            }

            /// Parses an id a client sent.
            pub fn parse(s: &str) -> Result<Self> {
                if s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                    Ok($name(s.to_owned()))
                } else {
                    Err($unknown)
                }
            }
        }

        string_newtype!($name);

        // As its text; a malformed one (a queue's payload from elsewhere)
        // does not deserialize.
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).map_err(|_| serde::de::Error::custom(concat!("not a ", stringify!($name))))
            }
        }
    };
}

hex_digest!(
    /// A SHA-1 digest as 40 lowercase hex characters: the protocol's declared checksum.
    Sha1Hex,
    40,
    ErrorCode::InvalidFilehash,
    "filehash must be a SHA-1 digest: 40 hex characters"
);

hex_digest!(
    /// A SHA-256 digest as 64 lowercase hex characters: the identity of
    /// stored content, with its size.
    Sha256Hex,
    64,
    ErrorCode::InvalidSha256,
    "sha256 must be a SHA-256 digest: 64 hex characters"
);

server_id!(
    /// The id of one entry in a user's files. It names the entry, not the
    /// content, so two entries for different contents with the same SHA-1
    /// stay apart.
    EntryId,
    Error::FileNotFound
);

server_id!(
    /// The id of one of a user's folders (the root has none).
    FolderId,
    Error::FolderNotFound
);

server_id!(
    /// An upload id. Unguessable, so knowing one proves nothing; ownership is
    /// still checked.
    UploadId,
    Error::UploadNotFound
);

/// A client's name for a file or folder: 1–255 bytes of UTF-8, no control
/// characters, no `/` or `\`, no invisible direction or separator marks,
/// and not `.` or `..` (paths like `/a/b/c.txt` name entries by these
/// names). Metadata only: it never becomes part of a path on disk or an
/// object key — but it does become one on the user's own machine, in a zip
/// or a sync client, so `\` (a separator to Windows extractors:
/// `..\..\evil.bat`) is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName(String);

impl FileName {
    /// Validates a file name.
    pub fn parse(s: &str) -> Result<Self> {
        if s.is_empty() {
            return Err(Error::invalid(ErrorCode::InvalidFilename, "filename must not be empty"));
        }
        if s.len() > 255 {
            return Err(Error::invalid(ErrorCode::InvalidFilename, "filename must be at most 255 bytes"));
        }
        if s.chars().any(char::is_control) {
            return Err(Error::invalid(ErrorCode::InvalidFilename, "filename must not contain control characters"));
        }
        if s.contains(['/', '\\']) || s == "." || s == ".." {
            return Err(Error::invalid(
                ErrorCode::InvalidFilename,
                "a name must not contain '/' or '\\' nor be '.' or '..'",
            ));
        }
        // Bidirectional overrides and isolates make `invoice\u{202E}fdp.exe`
        // look like `invoiceexe.pdf`. Zero-width joiners stay (emoji, Persian).
        if s.chars().any(is_bidi_control) {
            return Err(Error::invalid(
                ErrorCode::InvalidFilename,
                "filename must not contain bidirectional control characters (U+202A-U+202E, U+2066-U+2069)",
            ));
        }
        if s.chars().any(is_invisible_mark) {
            return Err(Error::invalid(
                ErrorCode::InvalidFilename,
                "filename must not contain invisible marks (U+200E, U+200F, U+061C, U+2028, U+2029, U+FEFF, \
                 U+FFFE, U+FFFF, U+E0000-U+E007F)",
            ));
        }
        Ok(FileName(s.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `n`th alternative for a taken name: `report (n).pdf`, the number
    /// before the last extension (`.bashrc (n)` and `archive (n)` have none),
    /// shortened to stay within 255 bytes.
    pub fn numbered(&self, n: u32) -> FileName {
        let (stem, ext) = self.numbered_parts(n);
        FileName(format!("{stem} ({n}){ext}"))
    }

    /// The parts of the `n`th alternative around its ` (n)`: the stem as
    /// far as it fits, and the extension.
    pub fn numbered_parts(&self, n: u32) -> (&str, &str) {
        let s = self.0.as_str();
        let (stem, ext) = match s.rfind('.') {
            Some(dot) if dot > 0 => s.split_at(dot),
            _ => (s, ""),
        };
        let suffix_len = format!(" ({n})").len() + ext.len();
        let mut stem_len = stem.len().min(255usize.saturating_sub(suffix_len));
        while !stem.is_char_boundary(stem_len) {
            stem_len -= 1;
        }
        (&stem[..stem_len], ext)
    }
}

/// How names compare within a folder: in Unicode NFC, so `café` typed on
/// Linux (NFC) and sent by macOS (NFD) are one name. Names are stored as
/// given; this key sits beside them.
pub fn name_key(name: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    if name.is_ascii() { name.to_owned() } else { name.nfc().collect() }
}

/// U+202A–U+202E (embeddings and overrides) and U+2066–U+2069 (isolates).
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Marks that change how a name reads or splits without being seen: the
/// direction marks (U+200E, U+200F, U+061C), the line and paragraph
/// separators (U+2028, U+2029), the byte-order mark and noncharacters
/// (U+FEFF, U+FFFE, U+FFFF) and the tag characters (U+E0000–U+E007F).
pub fn is_invisible_mark(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{2028}' | '\u{2029}' | '\u{FEFF}' | '\u{FFFE}' | '\u{FFFF}')
        || ('\u{E0000}'..='\u{E007F}').contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_documented_set() {
        assert!(UserName::parse("alice_01.x-y").is_ok());
        assert!(UserName::parse(&"a".repeat(64)).is_ok());
        for bad in ["", &"a".repeat(65), "a b", "a\0b", "ä", "a'--", "a/b"] {
            assert!(UserName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn passwords_are_8_to_1024_characters_without_nul() {
        assert!(Password::parse("12345678").is_ok());
        assert!(Password::parse("ééééééé").is_err(), "7 characters, 14 bytes");
        assert!(Password::parse(&"é".repeat(1024)).is_ok());
        assert!(Password::parse(&"x".repeat(1024)).is_ok());
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse(&"x".repeat(1025)).is_err());
        assert!(Password::parse("1234\u{0}5678").is_err());
    }

    #[test]
    fn sha1_hex_is_normalised_to_lowercase() {
        let h = Sha1Hex::parse("DA39A3EE5E6B4B0D3255BFEF95601890AFD80709").unwrap();
        assert_eq!(h.as_str(), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert!(Sha1Hex::parse("da39").is_err());
        assert!(Sha1Hex::parse(&"g".repeat(40)).is_err());
    }

    #[test]
    fn file_names_reject_control_characters_and_length() {
        assert!(FileName::parse("report (final).pdf").is_ok());
        assert!(FileName::parse("...").is_ok());
        assert!(FileName::parse("  ").is_ok(), "odd but harmless metadata");
        assert!(FileName::parse("family \u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}.jpg").is_ok(), "ZWJ emoji");
        assert!(
            FileName::parse("\u{0645}\u{06CC}\u{200C}\u{062E}\u{0648}\u{0627}\u{0645}.txt").is_ok(),
            "Persian ZWNJ"
        );
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "/",
            "a\0b",
            "a\nb",
            "a\u{85}b",
            &"n".repeat(256),
            "invoice\u{202E}fdp.exe",
            "a\u{2066}b",
            "a\u{202A}b",
            "..\\..\\evil.bat",
            "C:\\Windows\\evil.dll",
            "a\u{200E}b",
            "a\u{200F}b",
            "a\u{061C}b",
            "a\u{2028}b",
            "a\u{2029}b",
            "\u{FEFF}a",
            "a\u{FFFE}",
            "a\u{FFFF}",
            "a\u{E0001}b",
            "flag\u{E0067}\u{E007F}",
        ] {
            assert!(FileName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn taken_names_get_a_number_before_the_extension() {
        let n = |s: &str, i| FileName::parse(s).unwrap().numbered(i).as_str().to_owned();
        assert_eq!(n("report.pdf", 1), "report (1).pdf");
        assert_eq!(n("archive.tar.gz", 2), "archive.tar (2).gz");
        assert_eq!(n("notes", 3), "notes (3)");
        assert_eq!(n(".bashrc", 1), ".bashrc (1)");
        let long = n(&format!("{}.txt", "é".repeat(125)), 12);
        assert!(long.len() <= 255 && long.ends_with(" (12).txt"), "{long}");
    }

    #[test]
    fn upload_ids_are_unique_and_parse_back() {
        let a = UploadId::generate();
        assert_ne!(a, UploadId::generate());
        assert_eq!(UploadId::parse(a.as_str()).unwrap(), a);
        assert!(UploadId::parse("../x").is_err());
    }
}
