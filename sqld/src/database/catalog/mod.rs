//! Just enough of Postgres' system catalog and functions for the queries
//! that drivers and tools send on their own: `version()`,
//! `current_database()`, `current_schema()`, the `pg_catalog.pg_type`
//! lookup tokio-postgres makes for type OIDs it does not know, and the
//! introspection of psql's `\dt`, `\di`, `\l`, `\dn` and of ORMs.
//!
//! The catalog is an in-memory database attached as `pg_catalog` (and
//! another as `information_schema`) to each session's connection, so
//! ordinary SQLite answers those queries. Fixed facts (types, namespaces,
//! the database) are tables filled here; the schema's relations are live
//! views (`views`), some reading the objects' SQL text (`definitions`);
//! catalog functions are in `functions`; `activity` has the views of
//! live server state (`pg_stat_activity`, `pg_stat_replication`).
//!
//! The functions and the two empty databases come with every connection;
//! the tables and views are built the first time one of the session's
//! statements names them (`needed`), since building them costs more than
//! the rest of opening a session (about 3 ms) and most sessions never look.

mod activity;
mod definitions;
mod functions;
mod views;

use libsql_sys::rusqlite::functions::FunctionFlags;
use libsql_sys::rusqlite::{params, Connection, Result};
use pgwire::api::Type;

pub use activity::install as install_activity;

/// The Postgres version sqld answers as (`server_version_num`): 15, so
/// that tools refusing a server newer than themselves (pg_dump 15, as
/// Debian ships it) accept it, as do newer ones.
pub const SERVER_VERSION_NUM: u32 = 150_000;

/// `15.0`: the version `SERVER_VERSION_NUM` spells.
fn postgres_version() -> String {
    format!(
        "{}.{}",
        SERVER_VERSION_NUM / 10_000,
        SERVER_VERSION_NUM % 10_000
    )
}

/// The version string `SELECT version()` and `server_version` report:
/// Postgres-compatible first (drivers parse it), then what it really is.
pub fn server_version() -> String {
    format!(
        "{} (sqld {})",
        postgres_version(),
        env!("CARGO_PKG_VERSION")
    )
}

pub fn version_banner() -> String {
    format!(
        "PostgreSQL {} compatible; sqld {} on libsql {}",
        postgres_version(),
        env!("CARGO_PKG_VERSION"),
        libsql_sys::rusqlite::version()
    )
}

/// Types sqld sends, listed in `pg_catalog.pg_type`.
pub(super) const TYPES: &[Type] = &[
    Type::BOOL,
    Type::BYTEA,
    Type::INT8,
    Type::INT2,
    Type::INT4,
    Type::TEXT,
    Type::OID,
    Type::JSON,
    Type::FLOAT4,
    Type::FLOAT8,
    Type::UNKNOWN,
    Type::VARCHAR,
    Type::DATE,
    Type::TIME,
    Type::TIMESTAMP,
    Type::TIMESTAMPTZ,
    Type::NUMERIC,
    Type::JSONB,
    // Sent as text, but listed: drivers' type maps expect them.
    Type::INET,
    Type::UUID,
];

const PG_CATALOG_NAMESPACE_OID: i64 = 11;
const PUBLIC_NAMESPACE_OID: i64 = 2200;
const INFORMATION_SCHEMA_NAMESPACE_OID: i64 = 13_000;
/// The one database's OID (Postgres' first user database has 16384 too,
/// but relation OIDs start above it here).
const DATABASE_OID: i64 = 5;

/// The Postgres type a declared SQLite column type maps to (`text` when
/// there is none or it is unknown).
fn declared_type(decltype: Option<String>) -> Type {
    decltype
        .as_deref()
        .and_then(crate::types::type_for_decltype)
        .unwrap_or(Type::TEXT)
}

/// The OID of the array type of `ty`, as Postgres numbers them (0: none).
fn array_oid(ty: &Type) -> i64 {
    match *ty {
        Type::BOOL => 1000,
        Type::BYTEA => 1001,
        Type::INT8 => 1016,
        Type::INT2 => 1005,
        Type::INT4 => 1007,
        Type::TEXT => 1009,
        Type::OID => 1028,
        Type::JSON => 199,
        Type::INET => 1041,
        Type::UUID => 2951,
        Type::FLOAT4 => 1021,
        Type::FLOAT8 => 1022,
        Type::VARCHAR => 1015,
        Type::DATE => 1182,
        Type::TIME => 1183,
        Type::TIMESTAMP => 1115,
        Type::TIMESTAMPTZ => 1185,
        Type::NUMERIC => 1231,
        Type::JSONB => 3807,
        _ => 0,
    }
}

/// Where the OIDs of the types' I/O functions start in `pg_proc` (four per
/// type: input, output, receive, send), above any type's OID.
const IO_FUNCTION_OIDS: i64 = 100_000;

/// A type's text input and output functions, as Postgres names them.
fn io_functions(ty: &Type) -> (&'static str, &'static str) {
    match *ty {
        Type::BOOL => ("boolin", "boolout"),
        Type::BYTEA => ("byteain", "byteaout"),
        Type::INT2 => ("int2in", "int2out"),
        Type::INT4 => ("int4in", "int4out"),
        Type::INT8 => ("int8in", "int8out"),
        Type::OID => ("oidin", "oidout"),
        Type::FLOAT4 => ("float4in", "float4out"),
        Type::FLOAT8 => ("float8in", "float8out"),
        Type::NUMERIC => ("numeric_in", "numeric_out"),
        Type::TEXT => ("textin", "textout"),
        Type::VARCHAR => ("varcharin", "varcharout"),
        Type::DATE => ("date_in", "date_out"),
        Type::TIME => ("time_in", "time_out"),
        Type::TIMESTAMP => ("timestamp_in", "timestamp_out"),
        Type::TIMESTAMPTZ => ("timestamptz_in", "timestamptz_out"),
        Type::JSON => ("json_in", "json_out"),
        Type::JSONB => ("jsonb_in", "jsonb_out"),
        Type::INET => ("inet_in", "inet_out"),
        Type::UUID => ("uuid_in", "uuid_out"),
        _ => ("unknownin", "unknownout"),
    }
}

/// Postgres' type category letter (`pg_type.typcategory`).
fn category(ty: &Type) -> &'static str {
    match *ty {
        Type::BOOL => "B",
        Type::INT2
        | Type::INT4
        | Type::INT8
        | Type::OID
        | Type::FLOAT4
        | Type::FLOAT8
        | Type::NUMERIC => "N",
        Type::TEXT | Type::VARCHAR => "S",
        Type::DATE | Type::TIME | Type::TIMESTAMP | Type::TIMESTAMPTZ => "D",
        Type::UNKNOWN => "X",
        Type::INET => "I",
        _ => "U",
    }
}

/// Tables of fixed facts (the empty ones are `EMPTY_CATALOGS`).
const FIXED_TABLES: &str = "
     CREATE TABLE pg_catalog.pg_namespace (oid OID PRIMARY KEY, nspname TEXT, nspowner OID,
         nspacl TEXT, tableoid OID DEFAULT (pg_relation_oid('pg_namespace')));
     CREATE TABLE pg_catalog.pg_type (
         oid OID PRIMARY KEY, typname TEXT, typnamespace OID, typlen INTEGER,
         typtype TEXT, typelem OID, typbasetype OID, typrelid OID, typarray OID,
         typdelim TEXT, typcategory TEXT, typnotnull BOOLEAN, typtypmod INTEGER,
         typcollation OID, typowner OID, typisdefined BOOLEAN, typdefault TEXT,
         typstorage TEXT DEFAULT 'p', typalign TEXT DEFAULT 'i', typacl TEXT,
         typinput OID, typoutput OID, typreceive OID, typsend OID,
         tableoid OID DEFAULT (pg_relation_oid('pg_type')));
     CREATE TABLE pg_catalog.pg_am (oid OID PRIMARY KEY, amname TEXT, amhandler TEXT,
         amtype TEXT, tableoid OID DEFAULT (pg_relation_oid('pg_am')));
     INSERT INTO pg_catalog.pg_am (oid, amname, amhandler, amtype) VALUES (2, 'heap', 'heap_tableam_handler', 't'),
         (403, 'btree', 'bthandler', 'i');
     CREATE TABLE pg_catalog.pg_database (oid OID PRIMARY KEY, datname TEXT, datdba OID,
         encoding INTEGER, datlocprovider TEXT, datistemplate BOOLEAN, datallowconn BOOLEAN,
         datconnlimit INTEGER, datcollate TEXT, datctype TEXT, daticulocale TEXT,
         daticurules TEXT, datacl TEXT, datcollversion TEXT, datfrozenxid INTEGER DEFAULT 0,
         datminmxid INTEGER DEFAULT 0, dattablespace OID DEFAULT 1663,
         tableoid OID DEFAULT (pg_relation_oid('pg_database')));
";

/// Catalogs of what sqld never has (functions, casts, descriptions,
/// inheritance, triggers, policies, ...), as empty tables so that queries
/// joining them find no rows rather than fail: each with its columns (as
/// in Postgres, for what clients select) and the `tableoid` system column.
const EMPTY_CATALOGS: &[(&str, &str)] = &[
    ("pg_aggregate", "aggfnoid aggkind aggnumdirectargs aggtransfn aggfinalfn"),
    ("pg_auth_members", "oid roleid member grantor admin_option"),
        ("pg_amop", "oid amopfamily amoplefttype amoprighttype amopstrategy amopopr amopmethod"),
    ("pg_amproc", "oid amprocfamily amproclefttype amprocrighttype amprocnum amproc"),
    ("pg_cast", "oid castsource casttarget castfunc castcontext castmethod"),
    ("pg_collation", "oid collname collnamespace collowner collprovider collisdeterministic collencoding collcollate collctype colliculocale collversion"),
    ("pg_conversion", "oid conname connamespace conowner conforencoding contoencoding conproc condefault"),
    ("pg_default_acl", "oid defaclrole defaclnamespace defaclobjtype defaclacl"),
    ("pg_description", "objoid classoid objsubid description"),
    ("pg_enum", "oid enumtypid enumsortorder enumlabel"),
    ("pg_event_trigger", "oid evtname evtevent evtowner evtfoid evtenabled evttags"),
    ("pg_extension", "oid extname extowner extnamespace extrelocatable extversion extconfig extcondition"),
    ("pg_foreign_data_wrapper", "oid fdwname fdwowner fdwhandler fdwvalidator fdwacl fdwoptions"),
    ("pg_foreign_server", "oid srvname srvowner srvfdw srvtype srvversion srvacl srvoptions"),
    ("pg_foreign_table", "ftrelid ftserver ftoptions"),
    ("pg_inherits", "inhrelid inhparent inhseqno inhdetachpending"),
    ("pg_init_privs", "objoid classoid objsubid privtype initprivs"),
    ("pg_language", "oid lanname lanowner lanispl lanpltrusted lanplcallfoid laninline lanvalidator lanacl"),
    ("pg_largeobject_metadata", "oid lomowner lomacl"),
    ("pg_opclass", "oid opcmethod opcname opcnamespace opcowner opcfamily opcintype opcdefault opckeytype"),
    ("pg_operator", "oid oprname oprnamespace oprowner oprkind oprcanmerge oprcanhash oprleft oprright oprresult oprcom oprnegate oprcode oprrest oprjoin"),
    ("pg_sequence", "seqrelid seqtypid seqstart seqincrement seqmax seqmin seqcache seqcycle"),
        ("pg_opfamily", "oid opfmethod opfname opfnamespace opfowner"),
    ("pg_policy", "oid polname polrelid polcmd polpermissive polroles polqual polwithcheck"),
    ("pg_proc", "oid proname pronamespace proowner prolang procost prorows provariadic prosupport prokind prosecdef proleakproof proisstrict proretset provolatile proparallel pronargs pronargdefaults prorettype proargtypes proallargtypes proargmodes proargnames proargdefaults protrftypes prosrc probin prosqlbody proconfig proacl"),
    ("pg_publication", "oid pubname pubowner puballtables pubinsert pubupdate pubdelete pubtruncate pubviaroot"),
    ("pg_publication_namespace", "oid pnpubid pnnspid"),
    ("pg_publication_rel", "oid prpubid prrelid prqual prattrs"),
    ("pg_range", "rngtypid rngsubtype rngmultitypid rngcollation rngsubopc rngcanonical rngsubdiff"),
    ("pg_rewrite", "oid rulename ev_class ev_type ev_enabled is_instead ev_qual ev_action"),
    ("pg_seclabel", "objoid classoid objsubid provider label"),
    ("pg_seclabels", "objoid classoid objsubid objtype objnamespace objname provider label"),
    ("pg_shdescription", "objoid classoid description"),
    ("pg_shseclabel", "objoid classoid provider label"),
    ("pg_statistic_ext", "oid stxrelid stxname stxnamespace stxowner stxstattarget stxkeys stxkind stxexprs"),
    ("pg_subscription", "oid subdbid subname subowner subenabled subbinary substream subtwophasestate subdisableonerr subconninfo subslotname subsynccommit subpublications"),
    ("pg_tablespace", "oid spcname spcowner spcacl spcoptions"),
    ("pg_transform", "oid trftype trflang trffromsql trftosql"),
    ("pg_trigger", "oid tgrelid tgparentid tgname tgfoid tgtype tgenabled tgisinternal tgconstrrelid tgconstrindid tgconstraint tgdeferrable tginitdeferred tgnargs tgattr tgargs tgqual tgoldtable tgnewtable"),
    ("pg_ts_config", "oid cfgname cfgnamespace cfgowner cfgparser"),
    ("pg_ts_dict", "oid dictname dictnamespace dictowner dicttemplate dictinitoption"),
    ("pg_ts_parser", "oid prsname prsnamespace prsstart prstoken prsend prsheadline prslextype"),
    ("pg_ts_template", "oid tmplname tmplnamespace tmplinit tmpllexize"),
    ("pg_user_mapping", "oid umuser umserver umoptions"),
];

/// The CREATE TABLE statements of `EMPTY_CATALOGS`.
fn empty_catalogs() -> String {
    EMPTY_CATALOGS
        .iter()
        .map(|(name, columns)| {
            format!(
                "CREATE TABLE pg_catalog.{name} ({}, tableoid DEFAULT {});\n",
                columns.split(' ').collect::<Vec<_>>().join(", "),
                functions::relation_oid(name)
            )
        })
        .collect()
}

/// Whether `sql` may read the catalog: it names `information_schema` or a
/// `pg_` relation (a `pg_` name, unless it is called as a function;
/// `pg_catalog` alone only qualifies what follows). A scan of its bytes,
/// nothing allocated; a false positive only builds the catalog early.
pub fn needed(sql: &str) -> bool {
    let bytes = sql.as_bytes();
    let is_ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$';
    let mut previous: &[u8] = b"";
    let mut i = 0;
    while i < bytes.len() {
        if !is_ident(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_ident(bytes[i]) {
            i += 1;
        }
        let word = &bytes[start..i];
        if word.eq_ignore_ascii_case(b"information_schema") {
            return true;
        }
        if word.eq_ignore_ascii_case(b"pg_catalog") {
            continue;
        }
        if word.len() > 3 && word[..3].eq_ignore_ascii_case(b"pg_") {
            let next = bytes[i..].iter().find(|c| !c.is_ascii_whitespace());
            // `INSERT INTO pg_x(columns)` names a relation too.
            let called = next == Some(&b'(') && !previous.eq_ignore_ascii_case(b"into");
            if !called {
                return true;
            }
        }
        previous = word;
    }
    false
}

/// Gives `conn` the catalog functions and the (still empty) catalog
/// databases; `replica` says whether the server is a replica (in
/// Postgres' terms, in recovery).
pub fn attach(conn: &Connection, database_name: &str, replica: bool) -> Result<()> {
    let deterministic = || FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    let banner = version_banner();
    conn.create_scalar_function("version", 0, deterministic(), move |_| Ok(banner.clone()))?;
    let name = database_name.to_owned();
    conn.create_scalar_function("current_database", 0, deterministic(), move |_| {
        Ok(name.clone())
    })?;
    conn.create_scalar_function("current_schema", 0, deterministic(), |_| Ok("public"))?;
    conn.create_scalar_function("pg_backend_pid", 0, deterministic(), |_| {
        Ok(std::process::id() as i64)
    })?;

    conn.create_scalar_function("pg_is_in_recovery", 0, deterministic(), move |_| {
        Ok(replica)
    })?;

    functions::install(conn)?;
    definitions::install(conn)?;
    conn.create_scalar_function("pg_decltype_oid", 1, deterministic(), |ctx| {
        Ok(i64::from(declared_type(ctx.get(0)?).oid()))
    })?;
    conn.create_scalar_function("pg_decltype_name", 1, deterministic(), |ctx| {
        Ok(declared_type(ctx.get(0)?).name().to_owned())
    })?;
    // The statistics tables now, before the sandbox is on: a client's
    // ANALYZE (or `PRAGMA optimize`, which covers every attached database)
    // may then refresh the statistics, while the sandbox keeps it from
    // adding tables to the catalog.
    conn.execute_batch(
        "ATTACH DATABASE ':memory:' AS pg_catalog;
         ATTACH DATABASE ':memory:' AS information_schema;
         ANALYZE pg_catalog; ANALYZE information_schema",
    )
}

/// Whether the catalog's tables are there: built, and not undone since by
/// the rollback of the transaction that built them.
pub fn is_built(conn: &Connection) -> Result<bool> {
    let mut stmt = conn
        .prepare_cached("SELECT count(*) FROM pg_catalog.sqlite_schema WHERE name = 'pg_type'")?;
    stmt.query_row([], |row| row.get::<_, i64>(0))
        .map(|n| n > 0)
}

/// Builds the catalog's tables and views in the attached databases, inside
/// the session's transaction if it is in one (a savepoint, so a failure
/// leaves nothing half-built).
pub fn build(conn: &Connection, database_name: &str) -> Result<()> {
    conn.execute_batch("SAVEPOINT sqld_catalog")?;
    match fill(conn, database_name) {
        Ok(()) => conn.execute_batch("RELEASE sqld_catalog"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK TO sqld_catalog; RELEASE sqld_catalog");
            Err(e)
        }
    }
}

fn fill(conn: &Connection, database_name: &str) -> Result<()> {
    conn.execute_batch(FIXED_TABLES)?;
    conn.execute_batch(&empty_catalogs())?;
    conn.execute(
        "INSERT INTO pg_catalog.pg_namespace (oid, nspname, nspowner, nspacl)
             VALUES (?1, 'pg_catalog', 10, NULL), (?3, 'information_schema', 10, NULL),
             -- Anyone may use and create in public, as in Postgres 15.
             (?2, 'public', 10, '{sqld=UC/sqld,=U/sqld}')",
        params![
            PG_CATALOG_NAMESPACE_OID,
            PUBLIC_NAMESPACE_OID,
            INFORMATION_SCHEMA_NAMESPACE_OID
        ],
    )?;
    for (oid, catalog, text) in functions::DESCRIPTIONS {
        conn.execute(
            "INSERT INTO pg_catalog.pg_description (objoid, classoid, objsubid, description)
                 VALUES (?1, ?2, 0, ?3)",
            params![oid, catalog, text],
        )?;
    }
    conn.execute(
        "INSERT INTO pg_catalog.pg_database (oid, datname, datdba, encoding, datlocprovider,
             datistemplate, datallowconn, datconnlimit, datcollate, datctype)
             VALUES (?1, ?2, 10, 6, 'c', 0, 1, -1, 'C', 'C')",
        params![DATABASE_OID, database_name],
    )?;
    let mut insert = conn.prepare(
        "INSERT INTO pg_catalog.pg_type (oid, typname, typnamespace, typlen, typtype, typelem,
             typbasetype, typrelid, typarray, typdelim, typcategory, typnotnull, typtypmod,
             typcollation, typowner, typisdefined, typinput, typoutput, typreceive, typsend)
             VALUES (?1, ?2, ?3, ?4, 'b', 0, 0, 0, ?5, ',', ?6, 0, -1, 0, 10, 1,
                     ?7, ?7 + 1, ?7 + 2, ?7 + 3)",
    )?;
    // Each type's I/O functions, which drivers' type maps look up by name
    // (ruby-pg joins pg_type.typinput to pg_proc).
    let mut function = conn.prepare(
        "INSERT INTO pg_catalog.pg_proc (oid, proname, pronamespace, proowner, prokind,
             pronargs, prorettype) VALUES (?1, ?2, ?3, 10, 'f', 1, ?4)",
    )?;
    for ty in TYPES {
        let len: i64 = match *ty {
            Type::BOOL => 1,
            Type::INT2 => 2,
            Type::INT4 | Type::OID | Type::FLOAT4 | Type::DATE => 4,
            Type::INT8 | Type::FLOAT8 | Type::TIME | Type::TIMESTAMP | Type::TIMESTAMPTZ => 8,
            _ => -1,
        };
        let first_function = IO_FUNCTION_OIDS + 4 * ty.oid() as i64;
        insert.execute(params![
            ty.oid() as i64,
            ty.name(),
            PG_CATALOG_NAMESPACE_OID,
            len,
            array_oid(ty),
            category(ty),
            first_function
        ])?;
        let (input, output) = io_functions(ty);
        let receive = format!("{}recv", ty.name());
        let send = format!("{}send", ty.name());
        for (k, name) in [input, output, &receive, &send].into_iter().enumerate() {
            let returns = if k == 0 || k == 2 {
                ty.oid()
            } else {
                Type::TEXT.oid()
            };
            function.execute(params![
                first_function + k as i64,
                name,
                PG_CATALOG_NAMESPACE_OID,
                returns as i64
            ])?;
        }
    }
    drop(insert);
    drop(function);
    conn.execute_batch(views::PG_CATALOG)?;
    conn.execute_batch(views::INFORMATION_SCHEMA)?;
    conn.execute_batch(activity::VIEWS)?;
    conn.execute_batch("ANALYZE pg_catalog; ANALYZE information_schema")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needed_for_catalog_relations_only() {
        for sql in [
            "select typname from pg_catalog.pg_type where oid = $1",
            "SELECT * FROM PG_CLASS c",
            "select \"pg_attribute\".attname from \"pg_attribute\"",
            "select table_name from information_schema.tables",
            "select 1 from pg_namespace\nwhere nspname = 'public'",
            "INSERT INTO pg_catalog.pg_type(oid) VALUES (1)",
        ] {
            assert!(needed(sql), "{sql}");
        }
        for sql in [
            "select 1",
            "select * from t where id = $1",
            "SELECT pg_advisory_unlock_all(); CLOSE ALL",
            "select pg_catalog.version()",
            "select pg_backend_pid ()",
            "select mypg_table from t",
        ] {
            assert!(!needed(sql), "{sql}");
        }
    }

    fn count(conn: &Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn built_on_demand_and_again_after_a_rollback_undid_it() {
        let conn = Connection::open_in_memory().unwrap();
        attach(&conn, "db", false).unwrap();
        assert!(!is_built(&conn).unwrap());
        assert!(conn.prepare("select * from pg_catalog.pg_type").is_err());

        conn.execute_batch("BEGIN").unwrap();
        build(&conn, "db").unwrap();
        assert!(is_built(&conn).unwrap());
        assert!(!conn.is_autocommit(), "the build ends no transaction");
        let classes = "select count(*) from pg_catalog.pg_class";
        let read = |conn: &Connection| {
            conn.prepare_cached(classes)
                .unwrap()
                .query_row([], |r| r.get::<_, i64>(0))
                .unwrap()
        };
        assert_eq!(read(&conn), 0);
        conn.execute_batch("ROLLBACK").unwrap();
        assert!(!is_built(&conn).unwrap());
        build(&conn, "db").unwrap();
        assert_eq!(
            read(&conn),
            0,
            "a statement prepared before is prepared again"
        );
        assert!(conn.is_autocommit(), "the build leaves no transaction open");
        assert!(is_built(&conn).unwrap());
        assert_eq!(
            count(&conn, "select count(*) from pg_catalog.pg_type"),
            TYPES.len() as i64
        );
        conn.execute_batch("create table t (id integer primary key, name text)")
            .unwrap();
        assert_eq!(
            count(
                &conn,
                "select count(*) from pg_catalog.pg_class where relname = 't'"
            ),
            1
        );
        assert_eq!(
            count(
                &conn,
                "select count(*) from information_schema.columns where table_name = 't'"
            ),
            2
        );
    }
}
