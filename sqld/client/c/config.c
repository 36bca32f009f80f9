/*
 * The configuration entry points of the SQLite API, which are C varargs.
 * They configure SQLite's engine (memory allocators, lookaside, page
 * cache, per-connection flags), and there is no engine in this process:
 * the server's SQLite is configured by the server. They are accepted and
 * change nothing; options that report a setting through an int* write
 * back the setting asked for, so callers that read it see a consistent
 * answer. sqlite3_test_control reports failure (0 is "not available").
 */
#include <stdarg.h>
#include <stddef.h>

#include "sqlite3.h"

#define SQLITE_DBCONFIG_MAINDBNAME 1000
#define SQLITE_DBCONFIG_LOOKASIDE 1001

int sqlite3_config(int op, ...) {
    (void)op;
    return SQLITE_OK;
}

int sqlite3_db_config(sqlite3 *db, int op, ...) {
    (void)db;
    if (op == SQLITE_DBCONFIG_MAINDBNAME || op == SQLITE_DBCONFIG_LOOKASIDE) return SQLITE_OK;
    va_list ap;
    va_start(ap, op);
    int on = va_arg(ap, int);
    int *out = va_arg(ap, int *);
    va_end(ap);
    if (out) *out = on > 0 ? 1 : 0;
    return SQLITE_OK;
}

int sqlite3_test_control(int op, ...) {
    (void)op;
    return 0;
}

int sqlite3_vtab_config(sqlite3 *db, int op, ...) {
    (void)db;
    (void)op;
    return SQLITE_MISUSE;
}
