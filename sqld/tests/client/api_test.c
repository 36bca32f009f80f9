/*
 * Exercises the SQLite C API of the sqld client library against a real
 * sqld (argv[1] is its URL). Prints "ok" and exits 0 when every check
 * passes; prints the failed check and exits 1 otherwise.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlite3.h"

static int failures = 0;
#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                    \
        }                                                                  \
    } while (0)

static int rows_seen = 0;
static int count_rows(void *arg, int n, char **values, char **names) {
    (void)arg;
    (void)n;
    (void)names;
    (void)values;
    rows_seen++;
    return 0;
}

static sqlite3 *shared_db;
static void *writer(void *arg) {
    long base = (long)arg;
    for (int i = 0; i < 50; i++) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(shared_db, "INSERT INTO threads(v) VALUES (?)", -1, &st, NULL) != SQLITE_OK) return (void *)1;
        sqlite3_bind_int64(st, 1, base + i);
        int rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) return (void *)1;
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s URL\n", argv[0]);
        return 2;
    }
    const char *url = argv[1];
    sqlite3 *db = NULL;
    char *err = NULL;

    /* A filename that is not a URL cannot open: no local engine. */
    CHECK(sqlite3_open_v2("local.db", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) == SQLITE_CANTOPEN);
    CHECK(strstr(sqlite3_errmsg(db), "no local database engine") != NULL);
    sqlite3_close(db);

    CHECK(sqlite3_open(url, &db) == SQLITE_OK);
    CHECK(sqlite3_threadsafe() == 1);
    CHECK(sqlite3_libversion_number() == SQLITE_VERSION_NUMBER);
    CHECK(strcmp(sqlite3_libversion(), SQLITE_VERSION) == 0);
    CHECK(strncmp(sqlite3_sourceid(), SQLITE_SOURCE_ID, 60) == 0);
    CHECK(sqlite3_get_autocommit(db) == 1);
    CHECK(sqlite3_busy_timeout(db, 2000) == SQLITE_OK);

    /* exec with several statements and a callback */
    CHECK(sqlite3_exec(db,
                       "CREATE TABLE t(id INTEGER PRIMARY KEY, a, b TEXT UNIQUE);"
                       "CREATE TABLE threads(v INTEGER);"
                       "INSERT INTO t(a, b) VALUES (1, 'one');"
                       "INSERT INTO t(a, b) VALUES (2, 'two');",
                       NULL, NULL, &err) == SQLITE_OK);
    CHECK(err == NULL);
    CHECK(sqlite3_last_insert_rowid(db) == 2);
    CHECK(sqlite3_changes(db) == 1);
    CHECK(sqlite3_exec(db, "SELECT * FROM t", count_rows, NULL, &err) == SQLITE_OK);
    CHECK(rows_seen == 2);

    /* prepare with a tail pointer over a multi-statement string */
    const char *script = "SELECT 1; SELECT 2 -- trailing\n;  ";
    const char *tail = NULL;
    sqlite3_stmt *st = NULL;
    CHECK(sqlite3_prepare_v2(db, script, -1, &st, &tail) == SQLITE_OK);
    CHECK(tail != NULL && strncmp(tail, " SELECT 2", 9) == 0);
    CHECK(sqlite3_step(st) == SQLITE_ROW);
    CHECK(sqlite3_column_int(st, 0) == 1);
    CHECK(sqlite3_step(st) == SQLITE_DONE);
    sqlite3_finalize(st);
    CHECK(sqlite3_prepare_v3(db, tail, -1, 0, &st, &tail) == SQLITE_OK);
    CHECK(sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 2);
    sqlite3_finalize(st);
    CHECK(sqlite3_prepare_v2(db, tail, -1, &st, &tail) == SQLITE_OK);
    CHECK(st == NULL); /* only whitespace left */

    /* every storage class, per value, in one mixed column */
    CHECK(sqlite3_prepare_v2(db,
                             "SELECT 1 UNION ALL SELECT 'a' UNION ALL SELECT 1.5 UNION ALL SELECT x'00' "
                             "UNION ALL SELECT NULL",
                             -1, &st, NULL) == SQLITE_OK);
    int expected[] = {SQLITE_INTEGER, SQLITE_TEXT, SQLITE_FLOAT, SQLITE_BLOB, SQLITE_NULL};
    for (int i = 0; i < 5; i++) {
        CHECK(sqlite3_step(st) == SQLITE_ROW);
        CHECK(sqlite3_column_type(st, 0) == expected[i]);
        CHECK(sqlite3_value_type(sqlite3_column_value(st, 0)) == expected[i]);
    }
    CHECK(sqlite3_step(st) == SQLITE_DONE);
    sqlite3_finalize(st);

    /* binds: positional, numbered and named; 64-bit integers; blobs */
    CHECK(sqlite3_prepare_v2(db, "SELECT ?, ?3, :name, @at, $dollar, typeof(?2)", -1, &st, NULL) == SQLITE_OK);
    CHECK(sqlite3_bind_parameter_count(st) == 6);
    CHECK(sqlite3_bind_parameter_index(st, ":name") == 4);
    CHECK(sqlite3_bind_parameter_index(st, "@at") == 5);
    CHECK(sqlite3_bind_parameter_index(st, "$dollar") == 6);
    CHECK(strcmp(sqlite3_bind_parameter_name(st, 3), "?3") == 0);
    CHECK(sqlite3_bind_parameter_name(st, 1) == NULL);
    CHECK(sqlite3_column_count(st) == 6);
    CHECK(sqlite3_bind_int64(st, 1, 9223372036854775807LL) == SQLITE_OK);
    CHECK(sqlite3_bind_double(st, 2, 2.5) == SQLITE_OK);
    CHECK(sqlite3_bind_text(st, 3, "three", -1, SQLITE_TRANSIENT) == SQLITE_OK);
    unsigned char blob[3] = {0, 1, 2};
    CHECK(sqlite3_bind_blob(st, 4, blob, 3, SQLITE_STATIC) == SQLITE_OK);
    CHECK(sqlite3_bind_null(st, 5) == SQLITE_OK);
    CHECK(sqlite3_bind_zeroblob(st, 6, 4) == SQLITE_OK);
    CHECK(sqlite3_bind_int(st, 7, 1) == SQLITE_RANGE);
    CHECK(sqlite3_step(st) == SQLITE_ROW);
    CHECK(sqlite3_data_count(st) == 6);
    CHECK(sqlite3_column_int64(st, 0) == 9223372036854775807LL);
    CHECK(sqlite3_column_type(st, 1) == SQLITE_TEXT && strcmp((const char *)sqlite3_column_text(st, 1), "three") == 0);
    CHECK(sqlite3_column_type(st, 2) == SQLITE_BLOB && sqlite3_column_bytes(st, 2) == 3 &&
          memcmp(sqlite3_column_blob(st, 2), blob, 3) == 0);
    CHECK(sqlite3_column_type(st, 3) == SQLITE_NULL);
    CHECK(sqlite3_column_type(st, 4) == SQLITE_BLOB && sqlite3_column_bytes(st, 4) == 4);
    CHECK(strcmp((const char *)sqlite3_column_text(st, 5), "real") == 0);
    char *expanded = sqlite3_expanded_sql(st);
    CHECK(expanded != NULL && strstr(expanded, "9223372036854775807") != NULL);
    sqlite3_free(expanded);
    CHECK(sqlite3_stmt_busy(st) == 1);
    CHECK(sqlite3_stmt_readonly(st) == 1);
    CHECK(sqlite3_reset(st) == SQLITE_OK);
    CHECK(sqlite3_clear_bindings(st) == SQLITE_OK);
    CHECK(sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_NULL);
    sqlite3_finalize(st);

    /* a large blob round trip */
    size_t big_len = 3 * 1024 * 1024;
    unsigned char *big = malloc(big_len);
    for (size_t i = 0; i < big_len; i++) big[i] = (unsigned char)(i * 7);
    CHECK(sqlite3_prepare_v2(db, "SELECT length(?1), ?1", -1, &st, NULL) == SQLITE_OK);
    CHECK(sqlite3_bind_blob64(st, 1, big, big_len, SQLITE_TRANSIENT) == SQLITE_OK);
    CHECK(sqlite3_step(st) == SQLITE_ROW);
    CHECK(sqlite3_column_int64(st, 0) == (sqlite3_int64)big_len);
    CHECK(sqlite3_column_bytes(st, 1) == (int)big_len && memcmp(sqlite3_column_blob(st, 1), big, big_len) == 0);
    sqlite3_finalize(st);
    free(big);

    /* constraint errors come back as SQLite codes */
    CHECK(sqlite3_prepare_v2(db, "INSERT INTO t(a, b) VALUES (3, 'one')", -1, &st, NULL) == SQLITE_OK);
    CHECK(sqlite3_stmt_readonly(st) == 0);
    CHECK(sqlite3_step(st) == SQLITE_CONSTRAINT_UNIQUE);
    CHECK(sqlite3_errcode(db) == SQLITE_CONSTRAINT);
    CHECK(sqlite3_extended_errcode(db) == SQLITE_CONSTRAINT_UNIQUE);
    CHECK(strstr(sqlite3_errmsg(db), "UNIQUE constraint failed") != NULL);
    CHECK(sqlite3_reset(st) == SQLITE_CONSTRAINT_UNIQUE);
    sqlite3_finalize(st);
    CHECK(sqlite3_prepare_v2(db, "SELEC 1", -1, &st, NULL) == SQLITE_ERROR);
    CHECK(st == NULL && strstr(sqlite3_errmsg(db), "syntax error") != NULL);
    CHECK(strcmp(sqlite3_errstr(SQLITE_BUSY), "database is locked") == 0);

    /* transactions: autocommit follows the server; an error keeps it open */
    CHECK(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK);
    CHECK(sqlite3_get_autocommit(db) == 0);
    CHECK(sqlite3_exec(db, "INSERT INTO t(a, b) VALUES (9, 'one')", NULL, NULL, &err) == SQLITE_CONSTRAINT_UNIQUE);
    CHECK(err != NULL && strstr(err, "UNIQUE") != NULL);
    sqlite3_free(err);
    err = NULL;
    CHECK(sqlite3_get_autocommit(db) == 0);
    CHECK(sqlite3_exec(db, "SAVEPOINT sp; UPDATE t SET a = 100; ROLLBACK TO sp; RELEASE sp", NULL, NULL, NULL) == SQLITE_OK);
    CHECK(sqlite3_exec(db, "INSERT INTO t(a, b) VALUES (10, 'ten')", NULL, NULL, NULL) == SQLITE_OK);
    CHECK(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL) == SQLITE_OK);
    CHECK(sqlite3_get_autocommit(db) == 1);
    CHECK(sqlite3_exec(db, "UPDATE t SET a = a + 1", NULL, NULL, NULL) == SQLITE_OK);
    CHECK(sqlite3_changes(db) == 2);
    CHECK(sqlite3_total_changes(db) >= 4);

    /* prefetch: a 100-row query costs one round trip for all its steps */
    CHECK(sqlite3_prepare_v2(db, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100) SELECT x FROM c", -1, &st, NULL) == SQLITE_OK);
    sqlite3_int64 before = sqld_client_round_trips();
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) n++;
    CHECK(n == 100);
    CHECK(sqld_client_round_trips() - before == 1);
    printf("round trips for 100 steps: %lld\n", sqld_client_round_trips() - before);
    sqlite3_finalize(st);

    /* two threads on one connection */
    shared_db = db;
    pthread_t a, b;
    pthread_create(&a, NULL, writer, (void *)0L);
    pthread_create(&b, NULL, writer, (void *)1000L);
    void *ra, *rb;
    pthread_join(a, &ra);
    pthread_join(b, &rb);
    CHECK(ra == NULL && rb == NULL);
    CHECK(sqlite3_prepare_v2(db, "SELECT count(*) FROM threads", -1, &st, NULL) == SQLITE_OK);
    CHECK(sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 100);
    sqlite3_finalize(st);

    /* what needs a local engine fails clearly */
    CHECK(sqlite3_create_function(db, "f", 0, SQLITE_UTF8, NULL, NULL, NULL, NULL) == SQLITE_ERROR);
    CHECK(strstr(sqlite3_errmsg(db), "not supported by the sqld remote client") != NULL);
    sqlite3_blob *blobh = NULL;
    CHECK(sqlite3_blob_open(db, "main", "t", "a", 1, 0, &blobh) == SQLITE_ERROR && blobh == NULL);
    CHECK(sqlite3_backup_init(db, "main", db, "main") == NULL);
    CHECK(sqlite3_load_extension(db, "x", NULL, NULL) == SQLITE_ERROR);

    /* printf family and helpers */
    char *s = sqlite3_mprintf("%q|%Q|%Q|%w|%d|%lld|%.2f|%s", "it's", "x'y", NULL, "a\"b", 42, 1LL << 40, 1.5, "z");
    CHECK(strcmp(s, "it''s|'x''y'|NULL|a\"\"b|42|1099511627776|1.50|z") == 0);
    sqlite3_free(s);
    char buf[8];
    sqlite3_snprintf(sizeof buf, buf, "%s", "truncated text");
    CHECK(strcmp(buf, "truncat") == 0);
    CHECK(sqlite3_complete("SELECT 1;") == 1 && sqlite3_complete("SELECT 'a;") == 0);
    CHECK(sqlite3_stricmp("ABC", "abc") == 0 && sqlite3_strglob("a*", "abc") == 0 && sqlite3_strlike("A%", "abc", 0) == 0);

    /* close refuses while a statement is live; close_v2 defers */
    CHECK(sqlite3_prepare_v2(db, "SELECT 1", -1, &st, NULL) == SQLITE_OK);
    CHECK(sqlite3_close(db) == SQLITE_BUSY);
    CHECK(sqlite3_close_v2(db) == SQLITE_OK);
    CHECK(sqlite3_finalize(st) == SQLITE_OK);

    if (failures) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
