//! What drivers, pools and tools send on their own, before and around the
//! user's SQL: connect-time and pool-reset queries, `::` casts and other
//! Postgres spellings, settings functions, advisory locks, and catalog
//! introspection over the live schema.

mod common;

use common::Sqld;
use tokio_postgres::types::Type;
use tokio_postgres::SimpleQueryMessage;

/// The text of every row's columns, over all statements of a simple query.
async fn rows(c: &tokio_postgres::Client, sql: &str) -> Vec<Vec<Option<String>>> {
    c.simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
            }
            _ => None,
        })
        .collect()
}

/// The first column of the first row, as text.
async fn text(c: &tokio_postgres::Client, sql: &str) -> Option<String> {
    rows(c, sql).await.remove(0).remove(0)
}

#[tokio::test]
async fn sqlalchemy_connect_queries() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    let version = text(&c, "select pg_catalog.version()").await.unwrap();
    assert!(version.starts_with("PostgreSQL 15.0 "), "{version}");
    assert_eq!(
        text(&c, "show transaction isolation level")
            .await
            .as_deref(),
        Some("serializable")
    );
    assert_eq!(
        text(&c, "select current_schema()").await.as_deref(),
        Some("public")
    );
    // The same through the extended protocol, with the column Postgres names.
    let row = c
        .query_one("SHOW TRANSACTION ISOLATION LEVEL", &[])
        .await
        .unwrap();
    assert_eq!(row.columns()[0].name(), "transaction_isolation");
    assert_eq!(row.get::<_, String>(0), "serializable");
    assert_eq!(text(&c, "show time zone").await.as_deref(), Some("UTC"));
    // Rewritten result columns keep the names Postgres gives them.
    let row = c
        .query_one(
            "select pg_catalog.version(), '1'::integer, 2 = any(array[2])",
            &[],
        )
        .await
        .unwrap();
    let names: Vec<&str> = row.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["version", "int4", "?column?"]);
    let all = rows(&c, "show all").await;
    assert!(all.iter().any(|r| r[0].as_deref() == Some("search_path")));
}

#[tokio::test]
async fn asyncpg_pool_reset_runs() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    c.batch_execute("SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;")
        .await
        .unwrap();
}

#[tokio::test]
async fn advisory_locks_are_held_per_session() {
    let sqld = Sqld::start();
    let a = sqld.connect().await;
    let b = sqld.connect().await;
    let try_lock = "select pg_try_advisory_lock(42)";
    assert_eq!(text(&a, try_lock).await.as_deref(), Some("1"));
    // Re-entrant for its holder, refused to another session.
    assert_eq!(text(&a, try_lock).await.as_deref(), Some("1"));
    assert_eq!(text(&b, try_lock).await.as_deref(), Some("0"));
    assert_eq!(
        text(&b, "select pg_advisory_unlock(42)").await.as_deref(),
        Some("0")
    );
    // Two keys make one lock apart from the single key.
    assert_eq!(
        text(&b, "select pg_try_advisory_lock(0, 42)")
            .await
            .as_deref(),
        Some("1")
    );
    // Held until unlocked as often as locked.
    assert_eq!(
        text(&a, "select pg_advisory_unlock(42)").await.as_deref(),
        Some("1")
    );
    assert_eq!(text(&b, try_lock).await.as_deref(), Some("0"));
    // A waiting pg_advisory_lock gets the lock when its holder leaves.
    let waiter = tokio::spawn(async move {
        b.simple_query("select pg_advisory_lock(42)").await.unwrap();
        text(&b, "select pg_advisory_unlock(42)").await
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!waiter.is_finished());
    drop(a);
    let unlocked = tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
        .await
        .expect("the waiter got the lock")
        .unwrap();
    assert_eq!(unlocked.as_deref(), Some("1"));
}

#[tokio::test]
async fn settings_functions_read_and_write_the_session() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    assert_eq!(
        text(&c, "SELECT pg_catalog.set_config('search_path', '', false)")
            .await
            .as_deref(),
        Some("")
    );
    assert_eq!(text(&c, "show search_path").await.as_deref(), Some(""));
    c.batch_execute("set application_name = 'app'")
        .await
        .unwrap();
    assert_eq!(
        text(&c, "select current_setting('application_name')")
            .await
            .as_deref(),
        Some("app")
    );
    let e = c
        .simple_query("select current_setting('no_such_setting')")
        .await
        .unwrap_err();
    let message = e.as_db_error().map(|d| d.message().to_owned());
    assert!(
        message.unwrap_or_default().contains("no_such_setting"),
        "{e}"
    );
    assert_eq!(
        text(&c, "select current_setting('no_such_setting', true)").await,
        None
    );
    let users = rows(&c, "select current_user, session_user").await;
    assert_eq!(users[0], vec![Some("sqld".into()), Some("sqld".into())]);
}

#[tokio::test]
async fn double_colon_casts_convert() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    c.batch_execute("create table b(id integer primary key, data blob, at timestamp, d date)")
        .await
        .unwrap();
    // psycopg's ClientCursor interpolates literals with casts.
    c.batch_execute(
        "insert into b values (1, '\\x00ff41'::bytea, '2024-01-02T03:04:05.5'::timestamp, \
         '2024-01-02'::date)",
    )
    .await
    .unwrap();
    let row = c
        .query_one("select data, hex(data), at, d from b", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, Vec<u8>>(0), vec![0x00, 0xff, 0x41]);
    assert_eq!(row.get::<_, String>(1), "00FF41");
    assert_eq!(
        text(&c, "select at from b").await.as_deref(),
        Some("2024-01-02 03:04:05.5")
    );
    assert_eq!(
        text(&c, "select '12'::integer + 1").await.as_deref(),
        Some("13")
    );
    assert_eq!(
        text(&c, "select typeof('1.5'::float8)").await.as_deref(),
        Some("real")
    );
    // A boolean, as Postgres prints one (SQLite holds 1).
    assert_eq!(
        text(&c, "select 'yes'::boolean").await.as_deref(),
        Some("t")
    );
    assert_eq!(
        text(&c, "select 5::text || 'x'").await.as_deref(),
        Some("5x")
    );
}

#[tokio::test]
async fn parameter_casts_are_casts_not_names() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    // SQLite would read `$1::integer` as one parameter named so.
    let stmt = c
        .prepare("select ($1::integer + 1)::text, $2::text, typeof($1::int4)")
        .await
        .unwrap();
    // Typed as Postgres types them: `integer` is int4.
    assert_eq!(stmt.params(), &[Type::INT4, Type::TEXT]);
    let row = c.query_one(&stmt, &[&41i32, &"x"]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "42");
    assert_eq!(row.get::<_, String>(1), "x");
    assert_eq!(row.get::<_, String>(2), "integer");
}

#[tokio::test]
async fn postgres_operators_and_strings() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    c.batch_execute("create table n(id integer primary key, name text); insert into n values (1, 'ab'), (2, 'cd'), (3, 'Ef')")
        .await
        .unwrap();
    let ids = |sql: &'static str| {
        let c = &c;
        async move {
            rows(c, sql)
                .await
                .into_iter()
                .map(|r| r[0].clone().unwrap())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        ids("select id from n where id = ANY(ARRAY[1, 3]) order by id").await,
        ["1", "3"]
    );
    assert_eq!(
        ids("select id from n where id <> ALL(ARRAY[1, 3])").await,
        ["2"]
    );
    assert_eq!(
        ids("select id from n where name ~ '^[a-c]'").await,
        ["1", "2"]
    );
    assert_eq!(
        ids("select id from n where name !~ 'd$' order by id").await,
        ["1", "3"]
    );
    assert_eq!(ids("select id from n where name ~* '^e'").await, ["3"]);
    assert_eq!(
        ids("select id from n where name OPERATOR(pg_catalog.~) '^(cd)$' COLLATE pg_catalog.default")
            .await,
        ["2"]
    );
    assert_eq!(ids("select id from n where name ilike 'EF'").await, ["3"]);
    assert_eq!(
        text(&c, "select E'a\\tb\\\\'").await.as_deref(),
        Some("a\tb\\")
    );
    // SQLite's own `~` (bitwise not) is left alone.
    assert_eq!(text(&c, "select ~5").await.as_deref(), Some("-6"));
    // A Postgres array text as ANY's operand.
    assert_eq!(
        text(&c, "select 2 = any('{1,2,3}')").await.as_deref(),
        Some("1")
    );
}

#[tokio::test]
async fn psycopg_type_info_fetch() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    // psycopg's TypeInfo.fetch, as it sends it.
    let row = c
        .query_one(
            "SELECT typname AS name, oid, typarray AS array_oid, \
             oid::regtype::text AS regtype, typdelim AS delimiter \
             FROM pg_type t WHERE t.oid = to_regtype($1) ORDER BY t.oid",
            &[&"int4"],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>("name"), "int4");
    assert_eq!(row.get::<_, u32>("array_oid"), 1007);
    assert_eq!(row.get::<_, String>("regtype"), "integer");
    assert_eq!(row.get::<_, String>("delimiter"), ",");
    assert_eq!(text(&c, "select to_regtype('no_such_type')").await, None);
}

#[tokio::test]
async fn catalog_views_follow_the_schema() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    c.batch_execute(
        "create table parent(id integer primary key, code text unique not null);
         create table child(id integer primary key, parent_id integer references parent(id),
                            note text default 'none');
         create index child_parent on child(parent_id);
         create view v as select id from child;",
    )
    .await
    .unwrap();
    let relations = rows(
        &c,
        "select relname, relkind from pg_catalog.pg_class where relnamespace = 2200 order by relname",
    )
    .await;
    let names: Vec<(String, String)> = relations
        .into_iter()
        .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
        .collect();
    for expected in [
        ("child", "r"),
        ("child_parent", "i"),
        ("child_pkey", "i"),
        ("parent", "r"),
        ("parent_pkey", "i"),
        ("v", "v"),
    ] {
        assert!(
            names.contains(&(expected.0.into(), expected.1.into())),
            "{expected:?} in {names:?}"
        );
    }
    // OIDs are stable: the same in another session, and compare with
    // psql's quoted OIDs.
    let oid = text(&c, "select oid from pg_class where relname = 'child'")
        .await
        .unwrap();
    let other = sqld.connect().await;
    assert_eq!(
        text(&other, "select 'child'::regclass::integer").await,
        Some(oid.clone())
    );
    let columns = rows(
        &c,
        &format!(
            "select attname, format_type(atttypid, atttypmod), attnotnull from pg_attribute \
             where attrelid = '{oid}' order by attnum"
        ),
    )
    .await;
    assert_eq!(
        columns,
        vec![
            vec![Some("id".into()), Some("bigint".into()), Some("t".into())],
            vec![
                Some("parent_id".into()),
                Some("bigint".into()),
                Some("f".into())
            ],
            vec![Some("note".into()), Some("text".into()), Some("f".into())],
        ]
    );
    assert_eq!(
        rows(
            &c,
            "select table_name, table_type from information_schema.tables order by 1"
        )
        .await,
        vec![
            vec![Some("child".into()), Some("BASE TABLE".into())],
            vec![Some("parent".into()), Some("BASE TABLE".into())],
            vec![Some("v".into()), Some("VIEW".into())],
        ]
    );
    assert_eq!(
        rows(
            &c,
            "select column_name, data_type, is_nullable, column_default \
             from information_schema.columns where table_name = 'child' order by ordinal_position"
        )
        .await,
        vec![
            vec![
                Some("id".into()),
                Some("bigint".into()),
                Some("NO".into()),
                None
            ],
            vec![
                Some("parent_id".into()),
                Some("bigint".into()),
                Some("YES".into()),
                None
            ],
            vec![
                Some("note".into()),
                Some("text".into()),
                Some("YES".into()),
                Some("'none'".into())
            ],
        ]
    );
    assert_eq!(
        rows(
            &c,
            "select tc.table_name, tc.constraint_type, k.column_name \
             from information_schema.table_constraints tc \
             join information_schema.key_column_usage k using (constraint_name) \
             order by 1, 2, 3"
        )
        .await,
        vec![
            vec![
                Some("child".into()),
                Some("FOREIGN KEY".into()),
                Some("parent_id".into())
            ],
            vec![
                Some("child".into()),
                Some("PRIMARY KEY".into()),
                Some("id".into())
            ],
            vec![
                Some("parent".into()),
                Some("PRIMARY KEY".into()),
                Some("id".into())
            ],
            vec![
                Some("parent".into()),
                Some("UNIQUE".into()),
                Some("code".into())
            ],
        ]
    );
    // A table created now is in the views at once, in every session.
    c.batch_execute("create table later(x text)").await.unwrap();
    assert_eq!(
        text(
            &other,
            "select count(*) from pg_catalog.pg_class where relname = 'later'"
        )
        .await
        .as_deref(),
        Some("1")
    );
    // The catalogs are not the client's to change.
    let e = c
        .batch_execute("drop view information_schema.tables")
        .await
        .unwrap_err();
    assert_eq!(e.code().map(|c| c.code()), Some("42501"), "{e}");
}

#[tokio::test]
async fn catalog_fixed_facts() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    assert_eq!(
        text(&c, "select datname from pg_database").await.as_deref(),
        Some("sqld")
    );
    assert_eq!(
        text(&c, "select rolname from pg_roles").await.as_deref(),
        Some("sqld")
    );
    assert_eq!(
        text(&c, "select usename from pg_user").await.as_deref(),
        Some("sqld")
    );
    assert_eq!(
        text(
            &c,
            "select setting from pg_settings where name = 'server_version_num'"
        )
        .await
        .as_deref(),
        Some("150000")
    );
    assert_eq!(
        text(&c, "select description from pg_description")
            .await
            .as_deref(),
        Some("standard public schema")
    );
    assert_eq!(
        text(
            &c,
            "select has_table_privilege('t', 'select') and pg_table_is_visible(1)"
        )
        .await
        .as_deref(),
        Some("1")
    );
    assert_eq!(
        text(&c, "select obj_description(1, 'pg_class')").await,
        None
    );
}

/// The catalog is built when a statement first names it: inside a
/// transaction (and again after that transaction's rollback undid it), on
/// a replica (whose sessions are otherwise query-only), and through the
/// extended protocol's Parse.
#[tokio::test]
async fn catalog_is_built_on_first_use_wherever_that_is() {
    let primary = Sqld::start();
    let c = primary.connect().await;
    c.batch_execute("create table t (id integer primary key, name text)")
        .await
        .unwrap();
    let tables = "select count(*) from pg_catalog.pg_class where relname = 't'";
    c.batch_execute("begin").await.unwrap();
    assert_eq!(text(&c, tables).await.as_deref(), Some("1"));
    c.batch_execute("rollback").await.unwrap();
    assert_eq!(text(&c, tables).await.as_deref(), Some("1"));

    let fresh = primary.connect().await;
    let columns = fresh
        .prepare("select column_name from information_schema.columns where table_name = $1")
        .await
        .unwrap();
    let names: Vec<String> = fresh
        .query(&columns, &[&"t"])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(names, ["id", "name"]);

    let replica = Sqld::replica_of(&primary, &[]);
    replica.wait_ready();
    let r = replica.connect().await;
    assert_eq!(text(&r, tables).await.as_deref(), Some("1"));
    let written = r.batch_execute("insert into t (name) values ('x')").await;
    assert!(written.is_ok(), "writes are forwarded: {written:?}");
    assert_eq!(
        text(&r, "select count(*) from t").await.as_deref(),
        Some("1"),
        "the session is query-only again, and reads its write"
    );
}

#[tokio::test]
async fn parameters_in_expressions_are_typed_by_what_they_meet() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    c.batch_execute("create table people (id integer primary key, name text, score real)")
        .await
        .unwrap();
    let params = |sql: &'static str| {
        let c = &c;
        async move { c.prepare(sql).await.unwrap().params().to_vec() }
    };
    // Each was `text` before, which asyncpg refuses an integer for.
    assert_eq!(params("select $1 + 1").await, [Type::INT4]);
    assert_eq!(params("select coalesce($1, 1)").await, [Type::INT4]);
    assert_eq!(params("select abs($1)").await, [Type::FLOAT8]);
    assert_eq!(params("select $1 || 'x'").await, [Type::TEXT]);
    assert_eq!(
        params("insert into people (id, score) select $1, $2").await,
        [Type::INT8, Type::FLOAT8]
    );
    let stmt = c.prepare("select $1 + 1").await.unwrap();
    let row = c.query_one(&stmt, &[&41i32]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
}

#[tokio::test]
async fn computed_columns_are_typed_and_named_as_postgres_does() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    c.batch_execute(
        "create table items (id integer primary key, price real); \
         insert into items values (1, 2.5), (2, 4.0)",
    )
    .await
    .unwrap();
    // Described before it runs, with no row to sample for `id = $1`.
    let stmt = c
        .prepare("select count(*), id * 2, price * 2, $1::int4 + 1 from items where id = $2")
        .await
        .unwrap();
    let described: Vec<(&str, Type)> = stmt
        .columns()
        .iter()
        .map(|col| (col.name(), col.type_().clone()))
        .collect();
    assert_eq!(
        described,
        [
            ("count", Type::INT8),
            ("?column?", Type::INT8),
            ("?column?", Type::FLOAT8),
            ("?column?", Type::INT4),
        ]
    );
    let row = c.query_one(&stmt, &[&41i32, &1i64]).await.unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);
    assert_eq!(row.get::<_, i64>(1), 2);
    assert_eq!(row.get::<_, f64>(2), 5.0);
    assert_eq!(row.get::<_, i32>(3), 42);
    // The simple protocol names them alike.
    let simple = c
        .simple_query("select count(*), 1 + 1 from items")
        .await
        .unwrap();
    let tokio_postgres::SimpleQueryMessage::Row(row) = &simple[1] else {
        panic!("expected a row first, got {simple:?}");
    };
    let names: Vec<&str> = row.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["count", "?column?"]);
}

#[tokio::test]
async fn stored_timestamps_are_sent_in_postgres_format() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    // As node-postgres writes a Date, and as SQLite's functions write.
    c.batch_execute(
        "create table times (at timestamp, tz timestamptz, day date); \
         insert into times values ('2024-01-02T03:04:05.123+01:00', \
           '2024-01-02T03:04:05.123+01:00', '2024-01-02T00:00:00Z')",
    )
    .await
    .unwrap();
    let row = &rows(&c, "select at, tz, day from times").await[0];
    assert_eq!(row[0].as_deref(), Some("2024-01-02 03:04:05.123"));
    assert_eq!(row[1].as_deref(), Some("2024-01-02 02:04:05.123+00"));
    assert_eq!(row[2].as_deref(), Some("2024-01-02"));
}

#[tokio::test]
async fn serial_keys_are_numbered_and_derived_tables_name_their_columns() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    c.batch_execute("create table t (id serial not null, name varchar(20), primary key (id))")
        .await
        .unwrap();
    // SQLAlchemy's batched ORM insert, as it sends it.
    let ids: Vec<i64> = c
        .query(
            "insert into t (name) select p0::varchar from (values ($1::varchar, 0), ($2::varchar, 1)) \
             as imp_sen(p0, sen_counter) order by sen_counter returning t.id",
            &[&"a", &"b"],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, [1, 2]);
}

/// Catalog functions tools call: `lastval()` is the session's last
/// inserted rowid, comments and privileges are what sqld has (the public
/// schema's standard comment, every privilege), `pg_is_in_recovery()` is
/// true on a replica only.
#[tokio::test]
async fn catalog_functions() {
    let primary = Sqld::start();
    let c = primary.connect().await;
    let e = c.simple_query("select lastval()").await.unwrap_err();
    let message = e.as_db_error().map(|e| e.message().to_owned());
    assert!(
        message.is_some_and(|m| m.contains("lastval is not yet defined")),
        "{e:?}"
    );
    c.batch_execute(
        "create table t (id integer primary key, v text);
         insert into t (v) values ('a'), ('b')",
    )
    .await
    .unwrap();
    let other = primary.connect().await;
    other
        .batch_execute("insert into t (id, v) values (10, 'c')")
        .await
        .unwrap();
    assert_eq!(text(&c, "select lastval()").await.as_deref(), Some("2"));
    assert_eq!(
        text(&other, "select lastval()").await.as_deref(),
        Some("10")
    );
    for (sql, expected) in [
        (
            "select obj_description(2200, 'pg_namespace')",
            Some("standard public schema"),
        ),
        (
            "select obj_description(oid, 'pg_class') from pg_class where relname = 't'",
            None,
        ),
        ("select col_description('t'::regclass, 1)", None),
        (
            "select has_table_privilege('t', 'select') and has_schema_privilege('public', 'usage') \
             and has_database_privilege('sqld', 'connect') and has_table_privilege('sqld', 't', 'insert')",
            Some("1"),
        ),
        ("select pg_get_userbyid(10)", Some("sqld")),
        ("select pg_catalog.pg_encoding_to_char(6)", Some("UTF8")),
        ("select pg_is_in_recovery()", Some("0")),
    ] {
        assert_eq!(text(&c, sql).await.as_deref(), expected, "{sql}");
    }
    let replica = Sqld::replica_of(&primary, &[]);
    replica.wait_ready();
    let r = replica.connect().await;
    assert_eq!(
        text(&r, "select pg_is_in_recovery()").await.as_deref(),
        Some("1")
    );
}
