//! Bounded readers for Apache Thrift's binary and compact protocols.
//!
//! Jaeger's legacy wire formats are Thrift structs (`jaeger.thrift`), sent
//! in the binary protocol (collector HTTP, agent UDP port 6832) or the
//! compact protocol (agent UDP port 6831). Both protocols implement
//! [`Protocol`]; the struct decoders (`jaeger::thrift`) are written once
//! against the trait. No code generation: only the handful of Jaeger
//! structs are decoded, everything else is skipped.
//!
//! Every read is checked against the bytes that remain, so a malformed or
//! truncated payload ends in an [`Error`], never in a panic, an allocation
//! larger than the input, or a loop: collection sizes are bounded by the
//! remaining bytes (every element takes at least one byte on the wire, so a
//! count larger than the remaining bytes is refused before any loop), and
//! nesting by [`MAX_DEPTH`].

/// Deepest nesting of structs and collections accepted.
pub const MAX_DEPTH: usize = 32;

/// Errors of Thrift decoding.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("truncated: {needed} more bytes needed at offset {offset}")]
    Truncated { offset: usize, needed: usize },
    #[error("invalid {what} at offset {offset}")]
    Invalid { what: &'static str, offset: usize },
    #[error("{what} length {length} at offset {offset} exceeds the remaining {remaining} bytes")]
    TooLong { what: &'static str, length: i64, offset: usize, remaining: usize },
    #[error("nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("field {field} of {structure} has type {found:?}, expected {expected:?}")]
    WrongType { structure: &'static str, field: i16, expected: TType, found: TType },
    #[error("required field {field} of {structure} is missing")]
    MissingField { structure: &'static str, field: &'static str },
    #[error("{0}")]
    Other(String),
}

/// Result of Thrift decoding.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Thrift value types (the binary protocol's numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TType {
    Bool,
    Byte,
    Double,
    I16,
    I32,
    I64,
    Binary,
    Struct,
    Map,
    Set,
    List,
    Uuid,
}

impl TType {
    fn from_binary(b: u8, offset: usize) -> Result<Self> {
        Ok(match b {
            2 => TType::Bool,
            3 => TType::Byte,
            4 => TType::Double,
            6 => TType::I16,
            8 => TType::I32,
            10 => TType::I64,
            11 => TType::Binary,
            12 => TType::Struct,
            13 => TType::Map,
            14 => TType::Set,
            15 => TType::List,
            16 => TType::Uuid,
            _ => return Err(Error::Invalid { what: "type id", offset }),
        })
    }

    /// Compact-protocol element/field type (1 and 2 are both booleans).
    fn from_compact(b: u8, offset: usize) -> Result<Self> {
        Ok(match b {
            1 | 2 => TType::Bool,
            3 => TType::Byte,
            4 => TType::I16,
            5 => TType::I32,
            6 => TType::I64,
            7 => TType::Double,
            8 => TType::Binary,
            9 => TType::List,
            10 => TType::Set,
            11 => TType::Map,
            12 => TType::Struct,
            13 => TType::Uuid,
            _ => return Err(Error::Invalid { what: "compact type id", offset }),
        })
    }

    /// The fewest bytes one value of this type takes on the wire in either
    /// protocol (an empty struct is its STOP byte).
    fn min_size(self) -> usize {
        match self {
            TType::Double => 8,
            TType::Uuid => 16,
            _ => 1,
        }
    }
}

/// Thrift message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Call,
    Reply,
    Exception,
    Oneway,
}

impl MessageType {
    fn from_u8(b: u8, offset: usize) -> Result<Self> {
        Ok(match b {
            1 => MessageType::Call,
            2 => MessageType::Reply,
            3 => MessageType::Exception,
            4 => MessageType::Oneway,
            _ => return Err(Error::Invalid { what: "message type", offset }),
        })
    }
}

/// A message header: method name, type and sequence id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageHeader {
    pub name: String,
    pub kind: MessageType,
    pub seq_id: i32,
}

/// Reading one Thrift protocol. Implemented by [`BinaryProtocol`] and
/// [`CompactProtocol`]; decoders are written against this trait.
pub trait Protocol {
    /// Reads a message header (`emitBatch`, ...).
    fn read_message_begin(&mut self) -> Result<MessageHeader>;
    /// Enters a struct.
    fn read_struct_begin(&mut self) -> Result<()>;
    /// Leaves a struct (after its STOP field).
    fn read_struct_end(&mut self) -> Result<()>;
    /// The next field's type and id, or `None` at the struct's end (STOP).
    fn read_field_begin(&mut self) -> Result<Option<(TType, i16)>>;
    /// A list or set header: element type and count (bounded by the input).
    fn read_list_begin(&mut self) -> Result<(TType, usize)>;
    /// A map header: key type, value type and count (bounded by the input).
    fn read_map_begin(&mut self) -> Result<(TType, TType, usize)>;
    fn read_bool(&mut self) -> Result<bool>;
    fn read_byte(&mut self) -> Result<i8>;
    fn read_i16(&mut self) -> Result<i16>;
    fn read_i32(&mut self) -> Result<i32>;
    fn read_i64(&mut self) -> Result<i64>;
    fn read_double(&mut self) -> Result<f64>;
    /// A length-prefixed byte string (borrowed from the input).
    fn read_binary(&mut self) -> Result<&[u8]>;
    /// Bytes not read yet.
    fn remaining(&self) -> usize;
    /// Current read offset, for error messages.
    fn offset(&self) -> usize;

    /// A UTF-8 string (invalid sequences are replaced, as Jaeger's Go
    /// collector tolerates them).
    fn read_string(&mut self) -> Result<String> {
        Ok(String::from_utf8_lossy(self.read_binary()?).into_owned())
    }
}

/// Bounded cursor over the input, shared by both protocols.
#[derive(Debug)]
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let remaining = self.data.len() - self.pos;
        if n > remaining {
            return Err(Error::Truncated { offset: self.pos, needed: n - remaining });
        }
        let slice = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("length checked"))
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// Checks a collection or string length against the remaining input.
    fn check_len(&self, what: &'static str, length: i64, min_element: usize) -> Result<usize> {
        let remaining = self.remaining();
        if length < 0 || (length as u64).saturating_mul(min_element as u64) > remaining as u64 {
            return Err(Error::TooLong { what, length, offset: self.pos, remaining });
        }
        Ok(length as usize)
    }
}

/// Thrift's binary protocol (big-endian, fixed-width).
#[derive(Debug)]
pub struct BinaryProtocol<'a> {
    cursor: Cursor<'a>,
}

impl<'a> BinaryProtocol<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { cursor: Cursor { data, pos: 0 } }
    }
}

impl Protocol for BinaryProtocol<'_> {
    fn read_message_begin(&mut self) -> Result<MessageHeader> {
        let offset = self.offset();
        let first = self.read_i32()?;
        if first < 0 {
            // Strict: 0x8001 version, then type in the low byte.
            if (first as u32) & 0xffff_0000 != 0x8001_0000 {
                return Err(Error::Invalid { what: "binary protocol version", offset });
            }
            let kind = MessageType::from_u8(first as u8, offset)?;
            let name = self.read_string()?;
            let seq_id = self.read_i32()?;
            Ok(MessageHeader { name, kind, seq_id })
        } else {
            // Old non-strict form: name length, name, type byte, seq id.
            let len = self.cursor.check_len("message name", first as i64, 1)?;
            let name = String::from_utf8_lossy(self.cursor.take(len)?).into_owned();
            let kind = MessageType::from_u8(self.cursor.u8()?, offset)?;
            let seq_id = self.read_i32()?;
            Ok(MessageHeader { name, kind, seq_id })
        }
    }

    fn read_struct_begin(&mut self) -> Result<()> {
        Ok(())
    }

    fn read_struct_end(&mut self) -> Result<()> {
        Ok(())
    }

    fn read_field_begin(&mut self) -> Result<Option<(TType, i16)>> {
        let offset = self.offset();
        let t = self.cursor.u8()?;
        if t == 0 {
            return Ok(None);
        }
        let ttype = TType::from_binary(t, offset)?;
        let id = self.read_i16()?;
        Ok(Some((ttype, id)))
    }

    fn read_list_begin(&mut self) -> Result<(TType, usize)> {
        let offset = self.offset();
        let elem = TType::from_binary(self.cursor.u8()?, offset)?;
        let size = self.read_i32()?;
        let size = self.cursor.check_len("list", size as i64, elem.min_size())?;
        Ok((elem, size))
    }

    fn read_map_begin(&mut self) -> Result<(TType, TType, usize)> {
        let offset = self.offset();
        let key = TType::from_binary(self.cursor.u8()?, offset)?;
        let value = TType::from_binary(self.cursor.u8()?, offset + 1)?;
        let size = self.read_i32()?;
        let size = self.cursor.check_len("map", size as i64, key.min_size() + value.min_size())?;
        Ok((key, value, size))
    }

    fn read_bool(&mut self) -> Result<bool> {
        Ok(self.cursor.u8()? != 0)
    }

    fn read_byte(&mut self) -> Result<i8> {
        Ok(self.cursor.u8()? as i8)
    }

    fn read_i16(&mut self) -> Result<i16> {
        Ok(i16::from_be_bytes(self.cursor.array()?))
    }

    fn read_i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(self.cursor.array()?))
    }

    fn read_i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(self.cursor.array()?))
    }

    fn read_double(&mut self) -> Result<f64> {
        Ok(f64::from_be_bytes(self.cursor.array()?))
    }

    fn read_binary(&mut self) -> Result<&[u8]> {
        let len = self.read_i32()?;
        let len = self.cursor.check_len("binary", len as i64, 1)?;
        self.cursor.take(len)
    }

    fn remaining(&self) -> usize {
        self.cursor.remaining()
    }

    fn offset(&self) -> usize {
        self.cursor.pos
    }
}

/// Thrift's compact protocol (varints, zigzag, field-id deltas).
#[derive(Debug)]
pub struct CompactProtocol<'a> {
    cursor: Cursor<'a>,
    /// Last field id of each enclosing struct.
    last_field: Vec<i16>,
    current_field: i16,
    /// A boolean field's value, carried in its field header.
    pending_bool: Option<bool>,
}

impl<'a> CompactProtocol<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { cursor: Cursor { data, pos: 0 }, last_field: Vec::new(), current_field: 0, pending_bool: None }
    }

    fn varint(&mut self) -> Result<u64> {
        let offset = self.offset();
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.cursor.u8()?;
            if shift == 63 && b > 1 {
                break;
            }
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Error::Invalid { what: "varint", offset })
    }

    fn zigzag(&mut self) -> Result<i64> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn zigzag_i32(&mut self) -> Result<i32> {
        let offset = self.offset();
        i32::try_from(self.zigzag()?).map_err(|_| Error::Invalid { what: "i32 varint", offset })
    }
}

impl Protocol for CompactProtocol<'_> {
    fn read_message_begin(&mut self) -> Result<MessageHeader> {
        let offset = self.offset();
        if self.cursor.u8()? != 0x82 {
            return Err(Error::Invalid { what: "compact protocol id", offset });
        }
        let version_and_type = self.cursor.u8()?;
        if version_and_type & 0x1f != 1 {
            return Err(Error::Invalid { what: "compact protocol version", offset: offset + 1 });
        }
        let kind = MessageType::from_u8(version_and_type >> 5, offset + 1)?;
        let seq_id = self.varint()? as i32;
        let name = self.read_string()?;
        Ok(MessageHeader { name, kind, seq_id })
    }

    fn read_struct_begin(&mut self) -> Result<()> {
        if self.last_field.len() >= MAX_DEPTH {
            return Err(Error::TooDeep);
        }
        self.last_field.push(self.current_field);
        self.current_field = 0;
        Ok(())
    }

    fn read_struct_end(&mut self) -> Result<()> {
        self.current_field = self.last_field.pop().ok_or(Error::Other("struct end without begin".into()))?;
        Ok(())
    }

    fn read_field_begin(&mut self) -> Result<Option<(TType, i16)>> {
        let offset = self.offset();
        let header = self.cursor.u8()?;
        if header == 0 {
            return Ok(None);
        }
        let ttype = TType::from_compact(header & 0x0f, offset)?;
        let delta = header >> 4;
        let id = if delta == 0 {
            let id = self.zigzag()?;
            i16::try_from(id).map_err(|_| Error::Invalid { what: "field id", offset })?
        } else {
            self.current_field.checked_add(i16::from(delta)).ok_or(Error::Invalid { what: "field id", offset })?
        };
        self.current_field = id;
        self.pending_bool = (ttype == TType::Bool).then_some(header & 0x0f == 1);
        Ok(Some((ttype, id)))
    }

    fn read_list_begin(&mut self) -> Result<(TType, usize)> {
        let offset = self.offset();
        let header = self.cursor.u8()?;
        let elem = TType::from_compact(header & 0x0f, offset)?;
        let size = match header >> 4 {
            15 => {
                let size = self.varint()?;
                i64::try_from(size).unwrap_or(i64::MAX)
            }
            n => i64::from(n),
        };
        let size = self.cursor.check_len("list", size, elem.min_size())?;
        Ok((elem, size))
    }

    fn read_map_begin(&mut self) -> Result<(TType, TType, usize)> {
        let size = self.varint()?;
        if size == 0 {
            return Ok((TType::Byte, TType::Byte, 0));
        }
        let offset = self.offset();
        let types = self.cursor.u8()?;
        let key = TType::from_compact(types >> 4, offset)?;
        let value = TType::from_compact(types & 0x0f, offset)?;
        let size = i64::try_from(size).unwrap_or(i64::MAX);
        let size = self.cursor.check_len("map", size, key.min_size() + value.min_size())?;
        Ok((key, value, size))
    }

    fn read_bool(&mut self) -> Result<bool> {
        match self.pending_bool.take() {
            Some(b) => Ok(b),
            // A collection element: one byte, 1 = true (0 or 2 = false).
            None => Ok(self.cursor.u8()? == 1),
        }
    }

    fn read_byte(&mut self) -> Result<i8> {
        Ok(self.cursor.u8()? as i8)
    }

    fn read_i16(&mut self) -> Result<i16> {
        let offset = self.offset();
        i16::try_from(self.zigzag()?).map_err(|_| Error::Invalid { what: "i16 varint", offset })
    }

    fn read_i32(&mut self) -> Result<i32> {
        self.zigzag_i32()
    }

    fn read_i64(&mut self) -> Result<i64> {
        self.zigzag()
    }

    fn read_double(&mut self) -> Result<f64> {
        Ok(f64::from_le_bytes(self.cursor.array()?))
    }

    fn read_binary(&mut self) -> Result<&[u8]> {
        let len = self.varint()?;
        let len = self.cursor.check_len("binary", i64::try_from(len).unwrap_or(i64::MAX), 1)?;
        self.cursor.take(len)
    }

    fn remaining(&self) -> usize {
        self.cursor.remaining()
    }

    fn offset(&self) -> usize {
        self.cursor.pos
    }
}

/// Skips one value of type `ttype` (unknown fields, unsupported payloads).
pub fn skip(p: &mut dyn Protocol, ttype: TType) -> Result<()> {
    skip_inner(p, ttype, 0)
}

fn skip_inner(p: &mut dyn Protocol, ttype: TType, depth: usize) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::TooDeep);
    }
    match ttype {
        TType::Bool => {
            p.read_bool()?;
        }
        TType::Byte => {
            p.read_byte()?;
        }
        TType::I16 => {
            p.read_i16()?;
        }
        TType::I32 => {
            p.read_i32()?;
        }
        TType::I64 => {
            p.read_i64()?;
        }
        TType::Double => {
            p.read_double()?;
        }
        TType::Binary => {
            p.read_binary()?;
        }
        TType::Uuid => {
            for _ in 0..16 {
                p.read_byte()?;
            }
        }
        TType::Struct => {
            p.read_struct_begin()?;
            while let Some((t, _)) = p.read_field_begin()? {
                skip_inner(p, t, depth + 1)?;
            }
            p.read_struct_end()?;
        }
        TType::List | TType::Set => {
            let (elem, n) = p.read_list_begin()?;
            for _ in 0..n {
                skip_inner(p, elem, depth + 1)?;
            }
        }
        TType::Map => {
            let (k, v, n) = p.read_map_begin()?;
            for _ in 0..n {
                skip_inner(p, k, depth + 1)?;
                skip_inner(p, v, depth + 1)?;
            }
        }
    }
    Ok(())
}

/// Reads the list header of field `field` of `structure`, whose wire type
/// was `field_type`; anything but a list of `expected` elements is an error.
pub fn read_list_of(p: &mut dyn Protocol, structure: &'static str, field: i16, field_type: TType, expected: TType) -> Result<usize> {
    if field_type != TType::List {
        return Err(Error::WrongType { structure, field, expected: TType::List, found: field_type });
    }
    let (elem, n) = p.read_list_begin()?;
    if elem != expected && n > 0 {
        return Err(Error::WrongType { structure, field, expected, found: elem });
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_varints_and_fields() {
        // struct { 1: i64 = -2 (zigzag 3), 3: bool true, 20: string "ab" } STOP
        let data = [0x16, 0x03, 0x21, 0x08, 0x28, 0x02, b'a', b'b', 0x00];
        let mut p = CompactProtocol::new(&data);
        p.read_struct_begin().unwrap();
        assert_eq!(p.read_field_begin().unwrap(), Some((TType::I64, 1)));
        assert_eq!(p.read_i64().unwrap(), -2);
        assert_eq!(p.read_field_begin().unwrap(), Some((TType::Bool, 3)));
        assert!(p.read_bool().unwrap());
        assert_eq!(p.read_field_begin().unwrap(), Some((TType::Binary, 20)));
        assert_eq!(p.read_string().unwrap(), "ab");
        assert_eq!(p.read_field_begin().unwrap(), None);
        p.read_struct_end().unwrap();
    }

    #[test]
    fn oversized_lengths_are_refused_not_allocated() {
        // binary list of i64 claiming i32::MAX elements
        let data = [10u8, 0x7f, 0xff, 0xff, 0xff, 0, 0];
        let mut p = BinaryProtocol::new(&data);
        assert!(matches!(p.read_list_begin(), Err(Error::TooLong { .. })));
        // compact binary of length 2^62
        let data = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40];
        let mut p = CompactProtocol::new(&data);
        assert!(p.read_binary().is_err());
        // varint that never ends
        let mut p = CompactProtocol::new(&[0xff; 20]);
        assert!(matches!(p.read_i64(), Err(Error::Invalid { .. })));
    }

    #[test]
    fn deep_nesting_is_refused() {
        // binary: struct { 1: struct { 1: struct { ... } } } nested 1000 deep
        let mut data = Vec::new();
        for _ in 0..1000 {
            data.extend_from_slice(&[12, 0, 1]);
        }
        let mut p = BinaryProtocol::new(&data);
        assert_eq!(skip(&mut p, TType::Struct), Err(Error::TooDeep));
        let data = vec![0x1c; 1000];
        let mut p = CompactProtocol::new(&data);
        assert_eq!(skip(&mut p, TType::Struct), Err(Error::TooDeep));
    }

    #[test]
    fn struct_lists_are_bounded_by_the_input() {
        // compact list claiming 2^31 structs in 0 remaining bytes.
        let data = [0xfc, 0xff, 0xff, 0xff, 0xff, 0x07];
        let mut p = CompactProtocol::new(&data);
        assert!(skip(&mut p, TType::List).is_err());
    }
}
