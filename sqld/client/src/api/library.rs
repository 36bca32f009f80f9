//! Library-wide functions: version, initialization, threading, string
//! helpers, and the mutex objects some programs take.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::OnceLock;

use super::guard;
use crate::codes::*;

/// The SQLite release this library's API follows. Debian's `sqlite3` shell
/// refuses to run unless `sqlite3_sourceid` matches the one it was built
/// with, so these are the values of Debian 12's SQLite.
const VERSION: &CStr = c"3.40.1";
const VERSION_NUMBER: c_int = 3_040_001;
const SOURCE_ID: &CStr =
    c"2022-12-28 14:03:47 df5c253c0b3dd24916e4ec7cf77d3db5294cc9fd45ae7b9c5e82ad8197f3alt1";

#[no_mangle]
pub extern "C" fn sqlite3_libversion() -> *const c_char {
    VERSION.as_ptr()
}

#[no_mangle]
pub extern "C" fn sqlite3_libversion_number() -> c_int {
    VERSION_NUMBER
}

#[no_mangle]
pub extern "C" fn sqlite3_sourceid() -> *const c_char {
    SOURCE_ID.as_ptr()
}

/// Serialized: connections may be shared between threads.
#[no_mangle]
pub extern "C" fn sqlite3_threadsafe() -> c_int {
    1
}

/// Nothing to set up.
#[no_mangle]
pub extern "C" fn sqlite3_initialize() -> c_int {
    SQLITE_OK
}

/// Nothing to tear down.
#[no_mangle]
pub extern "C" fn sqlite3_shutdown() -> c_int {
    SQLITE_OK
}

/// Connections are always separate sessions on the server; accepted.
#[no_mangle]
pub extern "C" fn sqlite3_enable_shared_cache(_on: c_int) -> c_int {
    SQLITE_OK
}

/// Round trips made to sqld by this process (a sqld extension, for
/// measuring prefetching and pipelining).
#[no_mangle]
pub extern "C" fn sqld_client_round_trips() -> i64 {
    crate::wire::ROUND_TRIPS.load(std::sync::atomic::Ordering::Relaxed)
}

/// # Safety
/// `sql` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_complete(sql: *const c_char) -> c_int {
    guard(0, || {
        if sql.is_null() {
            return 0;
        }
        crate::scan::complete(CStr::from_ptr(sql).to_bytes()) as c_int
    })
}

#[no_mangle]
pub extern "C" fn sqlite3_errstr(rc: c_int) -> *const c_char {
    errstr(rc).as_ptr()
}

#[no_mangle]
pub extern "C" fn sqlite3_sleep(ms: c_int) -> c_int {
    std::thread::sleep(std::time::Duration::from_millis(ms.max(0) as u64));
    ms
}

/// # Safety
/// `p` holds `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_randomness(n: c_int, p: *mut c_void) {
    if p.is_null() || n <= 0 {
        return;
    }
    let out = std::slice::from_raw_parts_mut(p as *mut u8, n as usize);
    let mut f = std::fs::File::open("/dev/urandom").ok();
    let filled = f
        .as_mut()
        .is_some_and(|f| std::io::Read::read_exact(f, out).is_ok());
    if !filled {
        use std::hash::{BuildHasher, Hasher};
        for chunk in out.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_usize(chunk.as_ptr() as usize);
            let bytes = h.finish().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

unsafe fn bytes_of<'a>(p: *const c_char) -> &'a [u8] {
    if p.is_null() {
        &[]
    } else {
        CStr::from_ptr(p).to_bytes()
    }
}

fn compare_ci(a: &[u8], b: &[u8]) -> c_int {
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (x.to_ascii_lowercase(), y.to_ascii_lowercase());
        if x != y {
            return x as c_int - y as c_int;
        }
    }
    a.len() as c_int - b.len() as c_int
}

/// # Safety
/// NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_stricmp(a: *const c_char, b: *const c_char) -> c_int {
    compare_ci(bytes_of(a), bytes_of(b))
}

/// # Safety
/// NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_strnicmp(a: *const c_char, b: *const c_char, n: c_int) -> c_int {
    let n = n.max(0) as usize;
    let (a, b) = (bytes_of(a), bytes_of(b));
    compare_ci(&a[..a.len().min(n)], &b[..b.len().min(n)])
}

/// Glob matching (`*`, `?`, `[...]`), case-sensitive: 0 on a match.
///
/// # Safety
/// NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_strglob(glob: *const c_char, s: *const c_char) -> c_int {
    (!pattern_match(bytes_of(glob), bytes_of(s), b'*', b'?', None, false)) as c_int
}

/// LIKE matching (`%`, `_`, optional escape), ASCII case-insensitive: 0 on
/// a match.
///
/// # Safety
/// NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_strlike(
    pattern: *const c_char,
    s: *const c_char,
    esc: u32,
) -> c_int {
    let esc = (esc != 0).then_some(esc as u8);
    (!pattern_match(bytes_of(pattern), bytes_of(s), b'%', b'_', esc, true)) as c_int
}

fn pattern_match(p: &[u8], s: &[u8], many: u8, one: u8, esc: Option<u8>, nocase: bool) -> bool {
    let eq = |a: u8, b: u8| {
        if nocase {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    match p.split_first() {
        None => s.is_empty(),
        Some((&c, rest)) if Some(c) == esc => match (rest.split_first(), s.split_first()) {
            (Some((&l, prest)), Some((&x, srest))) if eq(l, x) => {
                pattern_match(prest, srest, many, one, esc, nocase)
            }
            _ => false,
        },
        Some((&c, rest)) if c == many => {
            (0..=s.len()).any(|k| pattern_match(rest, &s[k..], many, one, esc, nocase))
        }
        Some((&c, rest)) if c == one => {
            !s.is_empty() && pattern_match(rest, &s[1..], many, one, esc, nocase)
        }
        Some((b'[', rest)) if many == b'*' => {
            let Some(close) = rest.iter().skip(1).position(|b| *b == b']').map(|i| i + 1) else {
                return false;
            };
            let (class, after) = (&rest[..close], &rest[close + 1..]);
            let Some((&x, srest)) = s.split_first() else {
                return false;
            };
            let (negate, class) = match class.split_first() {
                Some((b'^', c)) => (true, c),
                _ => (false, class),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    hit |= class[i] <= x && x <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == x;
                    i += 1;
                }
            }
            hit != negate && pattern_match(after, srest, many, one, esc, nocase)
        }
        Some((&c, rest)) => match s.split_first() {
            Some((&x, srest)) if eq(c, x) => pattern_match(rest, srest, many, one, esc, nocase),
            _ => false,
        },
    }
}

/// SQLite's keywords, for programs that complete or quote identifiers.
const KEYWORDS: &[&CStr] = &[
    c"ABORT",
    c"ACTION",
    c"ADD",
    c"AFTER",
    c"ALL",
    c"ALTER",
    c"ALWAYS",
    c"ANALYZE",
    c"AND",
    c"AS",
    c"ASC",
    c"ATTACH",
    c"AUTOINCREMENT",
    c"BEFORE",
    c"BEGIN",
    c"BETWEEN",
    c"BY",
    c"CASCADE",
    c"CASE",
    c"CAST",
    c"CHECK",
    c"COLLATE",
    c"COLUMN",
    c"COMMIT",
    c"CONFLICT",
    c"CONSTRAINT",
    c"CREATE",
    c"CROSS",
    c"CURRENT",
    c"CURRENT_DATE",
    c"CURRENT_TIME",
    c"CURRENT_TIMESTAMP",
    c"DATABASE",
    c"DEFAULT",
    c"DEFERRABLE",
    c"DEFERRED",
    c"DELETE",
    c"DESC",
    c"DETACH",
    c"DISTINCT",
    c"DO",
    c"DROP",
    c"EACH",
    c"ELSE",
    c"END",
    c"ESCAPE",
    c"EXCEPT",
    c"EXCLUDE",
    c"EXCLUSIVE",
    c"EXISTS",
    c"EXPLAIN",
    c"FAIL",
    c"FILTER",
    c"FIRST",
    c"FOLLOWING",
    c"FOR",
    c"FOREIGN",
    c"FROM",
    c"FULL",
    c"GENERATED",
    c"GLOB",
    c"GROUP",
    c"GROUPS",
    c"HAVING",
    c"IF",
    c"IGNORE",
    c"IMMEDIATE",
    c"IN",
    c"INDEX",
    c"INDEXED",
    c"INITIALLY",
    c"INNER",
    c"INSERT",
    c"INSTEAD",
    c"INTERSECT",
    c"INTO",
    c"IS",
    c"ISNULL",
    c"JOIN",
    c"KEY",
    c"LAST",
    c"LEFT",
    c"LIKE",
    c"LIMIT",
    c"MATCH",
    c"MATERIALIZED",
    c"NATURAL",
    c"NO",
    c"NOT",
    c"NOTHING",
    c"NOTNULL",
    c"NULL",
    c"NULLS",
    c"OF",
    c"OFFSET",
    c"ON",
    c"OR",
    c"ORDER",
    c"OTHERS",
    c"OUTER",
    c"OVER",
    c"PARTITION",
    c"PLAN",
    c"PRAGMA",
    c"PRECEDING",
    c"PRIMARY",
    c"QUERY",
    c"RAISE",
    c"RANGE",
    c"RECURSIVE",
    c"REFERENCES",
    c"REGEXP",
    c"REINDEX",
    c"RELEASE",
    c"RENAME",
    c"REPLACE",
    c"RESTRICT",
    c"RETURNING",
    c"RIGHT",
    c"ROLLBACK",
    c"ROW",
    c"ROWS",
    c"SAVEPOINT",
    c"SELECT",
    c"SET",
    c"TABLE",
    c"TEMP",
    c"TEMPORARY",
    c"THEN",
    c"TIES",
    c"TO",
    c"TRANSACTION",
    c"TRIGGER",
    c"UNBOUNDED",
    c"UNION",
    c"UNIQUE",
    c"UPDATE",
    c"USING",
    c"VACUUM",
    c"VALUES",
    c"VIEW",
    c"VIRTUAL",
    c"WHEN",
    c"WHERE",
    c"WINDOW",
    c"WITH",
    c"WITHOUT",
];

#[no_mangle]
pub extern "C" fn sqlite3_keyword_count() -> c_int {
    KEYWORDS.len() as c_int
}

/// # Safety
/// `name` and `len` are valid pointers.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_keyword_name(
    i: c_int,
    name: *mut *const c_char,
    len: *mut c_int,
) -> c_int {
    match usize::try_from(i).ok().and_then(|i| KEYWORDS.get(i)) {
        Some(k) if !name.is_null() && !len.is_null() => {
            *name = k.as_ptr();
            *len = k.to_bytes().len() as c_int;
            SQLITE_OK
        }
        _ => SQLITE_ERROR,
    }
}

/// # Safety
/// `word` holds `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_keyword_check(word: *const c_char, n: c_int) -> c_int {
    if word.is_null() || n <= 0 {
        return 0;
    }
    let w = std::slice::from_raw_parts(word as *const u8, n as usize);
    KEYWORDS
        .iter()
        .any(|k| k.to_bytes().eq_ignore_ascii_case(w)) as c_int
}

// Mutexes: recursive pthread mutexes. Static ones (ids 2 and up) are
// shared process-wide, as SQLite's are.

const MUTEX_FAST: c_int = 0;
const MUTEX_RECURSIVE: c_int = 1;
const STATIC_MUTEXES: usize = 16;

#[allow(non_camel_case_types)]
pub struct sqlite3_mutex(libc::pthread_mutex_t);

fn new_mutex() -> *mut sqlite3_mutex {
    // SAFETY: initializing a freshly allocated pthread mutex.
    unsafe {
        let m = Box::into_raw(Box::new(sqlite3_mutex(std::mem::zeroed())));
        let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
        libc::pthread_mutexattr_init(&mut attr);
        libc::pthread_mutexattr_settype(&mut attr, libc::PTHREAD_MUTEX_RECURSIVE);
        libc::pthread_mutex_init(&mut (*m).0, &attr);
        libc::pthread_mutexattr_destroy(&mut attr);
        m
    }
}

#[no_mangle]
pub extern "C" fn sqlite3_mutex_alloc(id: c_int) -> *mut sqlite3_mutex {
    static SHARED: OnceLock<Vec<usize>> = OnceLock::new();
    match id {
        MUTEX_FAST | MUTEX_RECURSIVE => new_mutex(),
        id => {
            let shared =
                SHARED.get_or_init(|| (0..STATIC_MUTEXES).map(|_| new_mutex() as usize).collect());
            shared
                .get(id as usize)
                .map_or(std::ptr::null_mut(), |m| *m as *mut sqlite3_mutex)
        }
    }
}

/// # Safety
/// `m` is NULL or from `sqlite3_mutex_alloc`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_mutex_enter(m: *mut sqlite3_mutex) {
    if let Some(m) = m.as_mut() {
        libc::pthread_mutex_lock(&mut m.0);
    }
}

/// # Safety
/// `m` is NULL or from `sqlite3_mutex_alloc`.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_mutex_try(m: *mut sqlite3_mutex) -> c_int {
    match m.as_mut() {
        Some(m) => {
            if libc::pthread_mutex_trylock(&mut m.0) == 0 {
                SQLITE_OK
            } else {
                SQLITE_BUSY
            }
        }
        None => SQLITE_BUSY,
    }
}

/// # Safety
/// `m` is NULL or from `sqlite3_mutex_alloc`, held by this thread.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_mutex_leave(m: *mut sqlite3_mutex) {
    if let Some(m) = m.as_mut() {
        libc::pthread_mutex_unlock(&mut m.0);
    }
}

/// # Safety
/// `m` is NULL or a dynamic mutex from `sqlite3_mutex_alloc`, not held.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_mutex_free(m: *mut sqlite3_mutex) {
    // Static mutexes are never freed; callers must not pass them.
    if !m.is_null() {
        libc::pthread_mutex_destroy(&mut (*m).0);
        drop(Box::from_raw(m));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_and_like() {
        assert!(pattern_match(b"a*c", b"abbc", b'*', b'?', None, false));
        assert!(pattern_match(b"[a-c]?", b"bz", b'*', b'?', None, false));
        assert!(!pattern_match(b"A*", b"abc", b'*', b'?', None, false));
        assert!(pattern_match(b"A%", b"abc", b'%', b'_', None, true));
        assert!(pattern_match(b"a\\%", b"a%", b'%', b'_', Some(b'\\'), true));
    }
}
