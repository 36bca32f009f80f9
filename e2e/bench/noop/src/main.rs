//! A Postgres wire protocol (v3) responder that does no work.
//!
//! It answers every query, in the simple or the extended protocol, with the
//! same one-row, one-column result (`abalance = 0`), the shape a primary key
//! point select returns. pgbench driven against it measures what loopback,
//! the protocol and the client allow: the ceiling for any real server on the
//! same machine.
//!
//! One thread per connection with blocking I/O: benchmarks open a handful of
//! connections, and a thread that reads a whole pipeline of messages and
//! answers it with one write is as cheap as a server gets. Responses are
//! buffered until a message that ends a round trip (`Sync`, `Flush`, a simple
//! `Query`), so each round trip costs one read and one write.
//!
//! Usage: `pg-noop 127.0.0.1:PORT`.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;

/// Protocol version 3.0 in a startup packet.
const PROTOCOL_V3: i32 = 196_608;
/// Request codes that come in place of a protocol version.
const SSL_REQUEST: i32 = 80_877_103;
const GSSENC_REQUEST: i32 = 80_877_104;
const CANCEL_REQUEST: i32 = 80_877_102;
/// Largest message accepted; anything bigger is not a benchmark client.
const MAX_MESSAGE: usize = 1 << 20;
/// The type oid of `int4` for the single result column.
const INT4_OID: i32 = 23;
/// How many bytes one `read` asks for.
const READ_CHUNK: usize = 64 * 1024;

fn main() {
    let addr: SocketAddr = match std::env::args().nth(1).map(|a| a.parse()) {
        Some(Ok(addr)) => addr,
        _ => {
            eprintln!("usage: pg-noop 127.0.0.1:PORT");
            std::process::exit(2);
        }
    };
    let listener = match TcpListener::bind(addr) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("pg-noop: cannot listen on {addr}: {err}");
            std::process::exit(1);
        }
    };
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        thread::spawn(move || {
            // A client that disconnects ends its thread; nothing to report.
            let _ = serve(stream);
        });
    }
}

/// Runs one connection from the startup packet to `Terminate` or EOF.
fn serve(stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut conn = Connection {
        stream,
        input: Vec::with_capacity(READ_CHUNK),
        start: 0,
        last: (0, 0),
        output: Vec::with_capacity(READ_CHUNK),
    };
    if !conn.startup()? {
        return Ok(());
    }
    loop {
        let Some(tag) = conn.next_message()? else {
            return Ok(());
        };
        match tag {
            b'Q' => {
                row_description(&mut conn.output);
                data_row(&mut conn.output);
                command_complete(&mut conn.output);
                ready_for_query(&mut conn.output);
                conn.flush()?;
            }
            b'P' => message(&mut conn.output, b'1', &[]),
            b'B' => message(&mut conn.output, b'2', &[]),
            b'D' => {
                // Describe of a statement first lists its parameters: none
                // named here, which libpq accepts for any statement.
                if conn.last_body().first() == Some(&b'S') {
                    message(&mut conn.output, b't', &0i16.to_be_bytes());
                }
                row_description(&mut conn.output);
            }
            b'E' => {
                data_row(&mut conn.output);
                command_complete(&mut conn.output);
            }
            b'C' => message(&mut conn.output, b'3', &[]),
            b'S' => {
                ready_for_query(&mut conn.output);
                conn.flush()?;
            }
            b'H' => conn.flush()?,
            b'X' => return Ok(()),
            _ => {}
        }
    }
}

/// A connection's socket and its buffers.
struct Connection {
    stream: TcpStream,
    /// Bytes read but not yet consumed; `start` is where the next message
    /// begins, so a pipeline of messages is parsed without copying.
    input: Vec<u8>,
    start: usize,
    /// Where the body of the message last returned by `next_message` lies
    /// in `input`.
    last: (usize, usize),
    /// Responses waiting for the end of the round trip.
    output: Vec<u8>,
}

impl Connection {
    /// Handles SSL/GSS requests (declined) and the startup packet. Returns
    /// false for a cancel request or an unknown protocol.
    fn startup(&mut self) -> io::Result<bool> {
        loop {
            let len = self.read_i32()? as usize;
            if !(8..=MAX_MESSAGE).contains(&len) {
                return Ok(false);
            }
            let code = self.read_i32()?;
            self.skip(len - 8)?;
            match code {
                SSL_REQUEST | GSSENC_REQUEST => {
                    self.stream.write_all(b"N")?;
                }
                PROTOCOL_V3 => break,
                CANCEL_REQUEST => return Ok(false),
                _ => return Ok(false),
            }
        }
        message(&mut self.output, b'R', &0i32.to_be_bytes());
        for (name, value) in [
            ("server_version", "15.0"),
            ("server_encoding", "UTF8"),
            ("client_encoding", "UTF8"),
            ("DateStyle", "ISO, MDY"),
            ("integer_datetimes", "on"),
            ("standard_conforming_strings", "on"),
        ] {
            let mut body = Vec::new();
            cstr(&mut body, name);
            cstr(&mut body, value);
            message(&mut self.output, b'S', &body);
        }
        let mut key = Vec::new();
        key.extend_from_slice(&(std::process::id() as i32).to_be_bytes());
        key.extend_from_slice(&0i32.to_be_bytes());
        message(&mut self.output, b'K', &key);
        ready_for_query(&mut self.output);
        self.flush()?;
        Ok(true)
    }

    /// The next message's tag, with its body available via `last_body`;
    /// `None` at EOF.
    fn next_message(&mut self) -> io::Result<Option<u8>> {
        if !self.fill(5)? {
            return Ok(None);
        }
        let tag = self.input[self.start];
        let len = i32::from_be_bytes(self.input[self.start + 1..self.start + 5].try_into().unwrap());
        if !(4..=MAX_MESSAGE as i32).contains(&len) {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "bad length"));
        }
        let total = 1 + len as usize;
        if !self.fill(total)? {
            return Ok(None);
        }
        self.last = (self.start + 5, self.start + total);
        self.start += total;
        Ok(Some(tag))
    }

    fn last_body(&self) -> &[u8] {
        &self.input[self.last.0..self.last.1]
    }

    /// Makes sure `n` unconsumed bytes are buffered; false at EOF.
    fn fill(&mut self, n: usize) -> io::Result<bool> {
        while self.input.len() - self.start < n {
            if self.start > 0 {
                self.input.drain(..self.start);
                self.start = 0;
            }
            let old = self.input.len();
            self.input.resize(old + READ_CHUNK, 0);
            let got = self.stream.read(&mut self.input[old..])?;
            self.input.truncate(old + got);
            if got == 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn read_i32(&mut self) -> io::Result<i32> {
        if !self.fill(4)? {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let v = i32::from_be_bytes(self.input[self.start..self.start + 4].try_into().unwrap());
        self.start += 4;
        Ok(v)
    }

    fn skip(&mut self, n: usize) -> io::Result<()> {
        if !self.fill(n)? {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.start += n;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.write_all(&self.output)?;
        self.output.clear();
        Ok(())
    }
}

fn message(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    out.extend_from_slice(body);
}

fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

/// One column, `abalance int4`, text format.
fn row_description(out: &mut Vec<u8>) {
    let mut body = Vec::new();
    body.extend_from_slice(&1i16.to_be_bytes());
    cstr(&mut body, "abalance");
    body.extend_from_slice(&0i32.to_be_bytes()); // table oid
    body.extend_from_slice(&0i16.to_be_bytes()); // column number
    body.extend_from_slice(&INT4_OID.to_be_bytes());
    body.extend_from_slice(&4i16.to_be_bytes()); // type size
    body.extend_from_slice(&(-1i32).to_be_bytes()); // type modifier
    body.extend_from_slice(&0i16.to_be_bytes()); // text format
    message(out, b'T', &body);
}

fn data_row(out: &mut Vec<u8>) {
    let mut body = Vec::new();
    body.extend_from_slice(&1i16.to_be_bytes());
    body.extend_from_slice(&1i32.to_be_bytes());
    body.push(b'0');
    message(out, b'D', &body);
}

fn command_complete(out: &mut Vec<u8>) {
    let mut body = Vec::new();
    cstr(&mut body, "SELECT 1");
    message(out, b'C', &body);
}

fn ready_for_query(out: &mut Vec<u8>) {
    message(out, b'Z', b"I");
}
