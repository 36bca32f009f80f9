/*
 * The parts of the SQLite API that are C varargs, which stable Rust cannot
 * define: the printf family (sqlite3_mprintf, sqlite3_snprintf,
 * sqlite3_str_appendf and their va_list forms) and the sqlite3_str string
 * builder they share. Also the memory allocator, so every string this
 * library hands out is released by sqlite3_free.
 *
 * Conversions: the C ones are delegated to the C library one at a time;
 * SQLite's own are done here: %q (single quotes doubled), %Q (like %q, in
 * quotes, NULL as the word NULL), %w (double quotes doubled) and %z (like
 * %s, then the argument is freed). The ! and , flags are accepted and
 * dropped.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlite3.h"

#define SQLD_STR_NOMEM 7

struct sqlite3_str {
    char *z;
    size_t n;
    size_t cap;
    int err;
};

void *sqlite3_malloc(int n) { return n <= 0 ? NULL : malloc((size_t)n); }
void *sqlite3_malloc64(sqlite3_uint64 n) { return n == 0 ? NULL : malloc((size_t)n); }
void *sqlite3_realloc(void *p, int n) {
    if (n <= 0) {
        free(p);
        return NULL;
    }
    return realloc(p, (size_t)n);
}
void *sqlite3_realloc64(void *p, sqlite3_uint64 n) {
    if (n == 0) {
        free(p);
        return NULL;
    }
    return realloc(p, (size_t)n);
}
void sqlite3_free(void *p) { free(p); }

static void str_grow(sqlite3_str *s, size_t extra) {
    if (s->err) return;
    if (s->n + extra + 1 <= s->cap) return;
    size_t cap = s->cap ? s->cap : 64;
    while (cap < s->n + extra + 1) cap *= 2;
    char *z = realloc(s->z, cap);
    if (!z) {
        s->err = SQLD_STR_NOMEM;
        return;
    }
    s->z = z;
    s->cap = cap;
}

void sqlite3_str_append(sqlite3_str *s, const char *z, int n) {
    if (!s || !z || n <= 0) return;
    str_grow(s, (size_t)n);
    if (s->err) return;
    memcpy(s->z + s->n, z, (size_t)n);
    s->n += (size_t)n;
    s->z[s->n] = 0;
}

void sqlite3_str_appendall(sqlite3_str *s, const char *z) {
    if (z) sqlite3_str_append(s, z, (int)strlen(z));
}

void sqlite3_str_appendchar(sqlite3_str *s, int n, char c) {
    if (!s || n <= 0) return;
    str_grow(s, (size_t)n);
    if (s->err) return;
    memset(s->z + s->n, c, (size_t)n);
    s->n += (size_t)n;
    s->z[s->n] = 0;
}

/* Appends `z` with every `quote` doubled; `wrap` puts quotes around it. */
static void append_escaped(sqlite3_str *s, const char *z, int limit, char quote, int wrap) {
    if (wrap) sqlite3_str_appendchar(s, 1, quote);
    for (int i = 0; z[i] && (limit < 0 || i < limit); i++) {
        if (z[i] == quote) sqlite3_str_appendchar(s, 1, quote);
        sqlite3_str_appendchar(s, 1, z[i]);
    }
    if (wrap) sqlite3_str_appendchar(s, 1, quote);
}

/* Formats one C conversion (spec is a complete %... directive). */
#define APPEND_ONE(spec, value)                                        \
    do {                                                               \
        int need_ = snprintf(NULL, 0, spec, value);                    \
        if (need_ > 0) {                                               \
            str_grow(s, (size_t)need_);                                \
            if (!s->err) {                                             \
                snprintf(s->z + s->n, (size_t)need_ + 1, spec, value); \
                s->n += (size_t)need_;                                 \
            }                                                          \
        }                                                              \
    } while (0)

void sqlite3_str_vappendf(sqlite3_str *s, const char *fmt, va_list ap) {
    if (!s || !fmt) return;
    while (*fmt) {
        const char *pct = strchr(fmt, '%');
        if (!pct) {
            sqlite3_str_appendall(s, fmt);
            return;
        }
        sqlite3_str_append(s, fmt, (int)(pct - fmt));
        const char *p = pct + 1;
        char spec[64];
        size_t k = 0;
        spec[k++] = '%';
        while (*p && strchr("-+ #0!,", *p)) {
            if (*p != '!' && *p != ',' && k < 40) spec[k++] = *p;
            p++;
        }
        int width = -1, precision = -1;
        if (*p == '*') {
            width = va_arg(ap, int);
            k += (size_t)snprintf(spec + k, sizeof spec - k, "%d", width);
            p++;
        } else {
            while (*p >= '0' && *p <= '9') {
                if (k < 50) spec[k++] = *p;
                p++;
            }
        }
        if (*p == '.') {
            p++;
            if (*p == '*') {
                precision = va_arg(ap, int);
                p++;
            } else {
                precision = 0;
                while (*p >= '0' && *p <= '9') precision = precision * 10 + (*p++ - '0');
            }
            if (k < 50) k += (size_t)snprintf(spec + k, sizeof spec - k, ".%d", precision);
        }
        int longs = 0;
        while (*p == 'l') {
            longs++;
            p++;
        }
        while (*p == 'h' || *p == 'z' || *p == 'j' || *p == 't') {
            if (*p == 'z' || *p == 'j' || *p == 't') longs = 2;
            p++;
        }
        char conv = *p;
        if (!conv) break;
        p++;
        switch (conv) {
        case '%':
            sqlite3_str_appendchar(s, 1, '%');
            break;
        case 'd':
        case 'i':
        case 'u':
        case 'x':
        case 'X':
        case 'o':
            spec[k++] = 'l';
            spec[k++] = 'l';
            spec[k++] = conv;
            spec[k] = 0;
            if (conv == 'd' || conv == 'i') {
                long long v = longs >= 2 ? va_arg(ap, long long) : longs == 1 ? va_arg(ap, long) : va_arg(ap, int);
                APPEND_ONE(spec, v);
            } else {
                unsigned long long v = longs >= 2 ? va_arg(ap, unsigned long long)
                                       : longs == 1 ? va_arg(ap, unsigned long)
                                                    : va_arg(ap, unsigned int);
                APPEND_ONE(spec, v);
            }
            break;
        case 'c': {
            int c = va_arg(ap, int);
            spec[k++] = 'c';
            spec[k] = 0;
            APPEND_ONE(spec, c);
            break;
        }
        case 'f':
        case 'e':
        case 'E':
        case 'g':
        case 'G': {
            double v = va_arg(ap, double);
            spec[k++] = conv;
            spec[k] = 0;
            APPEND_ONE(spec, v);
            break;
        }
        case 'p': {
            void *v = va_arg(ap, void *);
            APPEND_ONE("%p", v);
            break;
        }
        case 's':
        case 'z': {
            char *v = va_arg(ap, char *);
            spec[k++] = 's';
            spec[k] = 0;
            APPEND_ONE(spec, v ? v : "");
            if (conv == 'z') free(v);
            break;
        }
        case 'q':
        case 'Q':
        case 'w': {
            const char *v = va_arg(ap, const char *);
            if (!v) {
                sqlite3_str_appendall(s, conv == 'Q' ? "NULL" : conv == 'w' ? "" : "(NULL)");
            } else {
                append_escaped(s, v, precision, conv == 'w' ? '"' : '\'', conv == 'Q');
            }
            break;
        }
        default:
            /* %T, %S and other internal conversions: not available. */
            sqlite3_str_appendchar(s, 1, '%');
            sqlite3_str_appendchar(s, 1, conv);
            break;
        }
        (void)width;
        fmt = p;
    }
}

void sqlite3_str_appendf(sqlite3_str *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sqlite3_str_vappendf(s, fmt, ap);
    va_end(ap);
}

sqlite3_str *sqlite3_str_new(sqlite3 *db) {
    (void)db;
    return calloc(1, sizeof(sqlite3_str));
}

char *sqlite3_str_finish(sqlite3_str *s) {
    if (!s) return NULL;
    char *z = s->err ? NULL : s->z;
    if (s->err) free(s->z);
    if (!z && !s->err) z = calloc(1, 1);
    free(s);
    return z;
}

int sqlite3_str_errcode(sqlite3_str *s) { return s ? s->err : SQLD_STR_NOMEM; }
int sqlite3_str_length(sqlite3_str *s) { return s ? (int)s->n : 0; }
char *sqlite3_str_value(sqlite3_str *s) { return s && s->n ? s->z : NULL; }
void sqlite3_str_reset(sqlite3_str *s) {
    if (!s) return;
    free(s->z);
    s->z = NULL;
    s->n = s->cap = 0;
    s->err = 0;
}

char *sqlite3_vmprintf(const char *fmt, va_list ap) {
    sqlite3_str s = {0};
    sqlite3_str_vappendf(&s, fmt, ap);
    if (s.err) {
        free(s.z);
        return NULL;
    }
    return s.z ? s.z : calloc(1, 1);
}

char *sqlite3_mprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *z = sqlite3_vmprintf(fmt, ap);
    va_end(ap);
    return z;
}

char *sqlite3_vsnprintf(int n, char *buf, const char *fmt, va_list ap) {
    if (n <= 0 || !buf) return buf;
    char *z = sqlite3_vmprintf(fmt, ap);
    if (!z) {
        buf[0] = 0;
        return buf;
    }
    size_t len = strlen(z);
    if (len >= (size_t)n) len = (size_t)n - 1;
    memcpy(buf, z, len);
    buf[len] = 0;
    free(z);
    return buf;
}

char *sqlite3_snprintf(int n, char *buf, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sqlite3_vsnprintf(n, buf, fmt, ap);
    va_end(ap);
    return buf;
}
