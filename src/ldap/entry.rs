//! What otpgate reads from a directory entry: its stable id in text (Active Directory's
//! `objectGUID` is 16 bytes in Microsoft's mixed byte order), and the mapped attributes.
//! Pure: no I/O.

use super::filter::StableIdValue;

/// The canonical text of a GUID from its 16 bytes as Active Directory sends them: the first
/// three fields little-endian, the last eight bytes in order
/// (`{33221100-5544-7766-8899-aabbccddeeff}` without the braces).
pub fn guid_text(bytes: &[u8]) -> Option<String> {
    let bytes: &[u8; 16] = bytes.try_into().ok()?;
    let data1 = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let data2 = u16::from_le_bytes([bytes[4], bytes[5]]);
    let data3 = u16::from_le_bytes([bytes[6], bytes[7]]);
    let tail: String = bytes[8..]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    Some(format!(
        "{data1:08x}-{data2:04x}-{data3:04x}-{}-{}",
        &tail[..4],
        &tail[4..]
    ))
}

/// The 16 bytes of a GUID from its canonical text: the inverse of `guid_text`.
pub fn guid_bytes(text: &str) -> Option<Vec<u8>> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    let groups: Vec<&str> = text.split('-').collect();
    if hex.len() != 32
        || groups.iter().map(|group| group.len()).collect::<Vec<_>>() != [8, 4, 4, 4, 12]
        || !hex.bytes().all(|byte| byte.is_ascii_hexdigit())
    {
        return None;
    }
    let plain = data_encoding::HEXLOWER_PERMISSIVE
        .decode(hex.as_bytes())
        .ok()?;
    let mut bytes = Vec::with_capacity(16);
    bytes.extend(plain[0..4].iter().rev());
    bytes.extend(plain[4..6].iter().rev());
    bytes.extend(plain[6..8].iter().rev());
    bytes.extend_from_slice(&plain[8..]);
    Some(bytes)
}

/// How a stable id attribute is read and compared: `objectGUID` is binary, the rest text.
pub fn is_binary_id(attribute: &str) -> bool {
    attribute.eq_ignore_ascii_case("objectGUID")
}

/// The stable id of an entry in text, from the attribute's raw value.
pub fn stable_id(attribute: &str, raw: &[u8]) -> Option<String> {
    if is_binary_id(attribute) {
        guid_text(raw)
    } else {
        let text = std::str::from_utf8(raw).ok()?.trim();
        (!text.is_empty()).then(|| text.to_ascii_lowercase())
    }
}

/// A stable id in text as the directory compares it.
pub fn stable_id_value(attribute: &str, text: &str) -> Option<StableIdValue> {
    if is_binary_id(attribute) {
        guid_bytes(text).map(StableIdValue::Bytes)
    } else {
        Some(StableIdValue::Text(text.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example of MS-DTYP §2.3.4.2: GUID {6B29FC40-CA47-1067-B31D-00DD010662DA}.
    const WIRE: [u8; 16] = [
        0x40, 0xfc, 0x29, 0x6b, 0x47, 0xca, 0x67, 0x10, 0xb3, 0x1d, 0x00, 0xdd, 0x01, 0x06, 0x62,
        0xda,
    ];

    #[test]
    fn object_guid_bytes_become_the_canonical_guid() {
        assert_eq!(
            guid_text(&WIRE).as_deref(),
            Some("6b29fc40-ca47-1067-b31d-00dd010662da")
        );
    }

    #[test]
    fn the_canonical_guid_gives_back_the_bytes_active_directory_compares() {
        assert_eq!(
            guid_bytes("6B29FC40-CA47-1067-B31D-00DD010662DA").as_deref(),
            Some(&WIRE[..])
        );
        assert_eq!(guid_bytes("6b29fc40ca471067b31d00dd010662da"), None);
        assert_eq!(guid_bytes("6b29fc40-ca47-1067-b31d-00dd010662zz"), None);
    }

    #[test]
    fn a_guid_of_the_wrong_length_is_no_stable_id() {
        assert_eq!(guid_text(&WIRE[..15]), None);
        assert_eq!(stable_id("objectGUID", b"not a guid"), None);
    }

    #[test]
    fn a_text_stable_id_is_kept_in_lowercase() {
        assert_eq!(
            stable_id("entryUUID", b"13625CF0-860C-1041-88B2-DFE26E0CCA4E").as_deref(),
            Some("13625cf0-860c-1041-88b2-dfe26e0cca4e")
        );
        assert_eq!(stable_id("entryUUID", b"  "), None);
    }
}
