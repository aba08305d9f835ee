//! A minimal Thrift writer (binary and compact protocols) for tests: builds
//! valid `jaeger.thrift` batches and agent `emitBatch` datagrams, to fuzz
//! from (truncations) and to check the UDP ports take a valid write.
#![allow(dead_code)]

/// Thrift protocol to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Binary,
    Compact,
}

/// Field types used by jaeger.thrift.
#[derive(Debug, Clone, Copy)]
enum T {
    I32,
    I64,
    Str,
    Struct,
    List,
}

impl T {
    fn binary(self) -> u8 {
        match self {
            T::I32 => 8,
            T::I64 => 10,
            T::Str => 11,
            T::Struct => 12,
            T::List => 15,
        }
    }
    fn compact(self) -> u8 {
        match self {
            T::I32 => 5,
            T::I64 => 6,
            T::Str => 8,
            T::Struct => 12,
            T::List => 9,
        }
    }
}

struct W {
    p: Proto,
    out: Vec<u8>,
    last: Vec<i16>,
}

impl W {
    fn varint(&mut self, mut v: u64) {
        loop {
            if v < 0x80 {
                self.out.push(v as u8);
                return;
            }
            self.out.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
    }
    fn zigzag(&mut self, v: i64) {
        self.varint(((v << 1) ^ (v >> 63)) as u64);
    }
    fn field(&mut self, t: T, id: i16) {
        match self.p {
            Proto::Binary => {
                self.out.push(t.binary());
                self.out.extend_from_slice(&id.to_be_bytes());
            }
            Proto::Compact => {
                let last = self.last.last_mut().unwrap();
                let delta = id - *last;
                *last = id;
                if (1..=15).contains(&delta) {
                    self.out.push(((delta as u8) << 4) | t.compact());
                } else {
                    self.out.push(t.compact());
                    self.zigzag(id as i64);
                }
            }
        }
    }
    fn begin(&mut self) {
        self.last.push(0);
    }
    fn stop(&mut self) {
        self.out.push(0);
        self.last.pop();
    }
    fn i32(&mut self, id: i16, v: i32) {
        self.field(T::I32, id);
        match self.p {
            Proto::Binary => self.out.extend_from_slice(&v.to_be_bytes()),
            Proto::Compact => self.zigzag(v as i64),
        }
    }
    fn i64(&mut self, id: i16, v: i64) {
        self.field(T::I64, id);
        match self.p {
            Proto::Binary => self.out.extend_from_slice(&v.to_be_bytes()),
            Proto::Compact => self.zigzag(v),
        }
    }
    fn raw_str(&mut self, s: &str) {
        match self.p {
            Proto::Binary => self.out.extend_from_slice(&(s.len() as i32).to_be_bytes()),
            Proto::Compact => self.varint(s.len() as u64),
        }
        self.out.extend_from_slice(s.as_bytes());
    }
    fn str(&mut self, id: i16, s: &str) {
        self.field(T::Str, id);
        self.raw_str(s);
    }
    fn list_of_structs(&mut self, id: i16, n: usize) {
        self.field(T::List, id);
        match self.p {
            Proto::Binary => {
                self.out.push(12);
                self.out.extend_from_slice(&(n as i32).to_be_bytes());
            }
            Proto::Compact if n < 15 => self.out.push(((n as u8) << 4) | 12),
            Proto::Compact => {
                self.out.push(0xf0 | 12);
                self.varint(n as u64);
            }
        }
    }
    fn string_tag(&mut self, key: &str, value: &str) {
        self.begin();
        self.str(1, key);
        self.i32(2, 0);
        self.str(3, value);
        self.stop();
    }
}

/// A span of [`batch`]: `(span id, parent id or 0, name)`.
pub type SpanSpec<'a> = (i64, i64, &'a str);

fn write_batch(w: &mut W, service: &str, trace_low: i64, spans: &[SpanSpec], padding: usize) {
    let now_us = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64;
    w.begin();
    w.field(T::Struct, 1);
    w.begin();
    w.str(1, service);
    w.stop();
    w.list_of_structs(2, spans.len());
    for (id, parent, name) in spans {
        w.begin();
        w.i64(1, trace_low);
        w.i64(2, 0);
        w.i64(3, *id);
        w.i64(4, *parent);
        w.str(5, name);
        w.i32(7, 1);
        w.i64(8, now_us);
        w.i64(9, 1_000);
        w.list_of_structs(10, 1);
        w.string_tag("padding", &"x".repeat(padding));
        w.stop();
    }
    w.stop();
}

/// A `jaeger.thrift` `Batch` (the collector's HTTP body). `padding` bytes of
/// tag value per span make large payloads.
pub fn batch(p: Proto, service: &str, trace_low: i64, spans: &[SpanSpec], padding: usize) -> Vec<u8> {
    let mut w = W { p, out: Vec::new(), last: Vec::new() };
    write_batch(&mut w, service, trace_low, spans, padding);
    w.out
}

/// An agent datagram: `Agent.emitBatch(batch)` as a oneway message.
pub fn emit_batch(p: Proto, service: &str, trace_low: i64, spans: &[SpanSpec], padding: usize) -> Vec<u8> {
    let mut w = W { p, out: Vec::new(), last: Vec::new() };
    match p {
        Proto::Binary => {
            w.out.extend_from_slice(&(0x8001_0000u32 as i32 | 4).to_be_bytes());
            w.raw_str("emitBatch");
            w.out.extend_from_slice(&1i32.to_be_bytes());
        }
        Proto::Compact => {
            w.out.push(0x82);
            w.out.push((4 << 5) | 1);
            w.varint(1);
            w.raw_str("emitBatch");
        }
    }
    w.begin();
    w.field(T::Struct, 1);
    write_batch(&mut w, service, trace_low, spans, padding);
    w.stop();
    w.out
}

/// The 16-byte trace id Spanlake stores for a 64-bit Jaeger id.
pub fn trace_id_bytes(trace_low: i64) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[8..].copy_from_slice(&trace_low.to_be_bytes());
    id
}
