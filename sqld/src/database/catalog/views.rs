//! The catalog's live part: views over SQLite's own description of the
//! database (`pragma_table_list`, `pragma_table_info`,
//! `pragma_index_list`, ...), so `pg_class`, `pg_attribute`, `pg_index`,
//! `pg_constraint` and `information_schema` always show the schema as it
//! is, in every session, with no copy to keep up to date. Relation OIDs
//! come from `pg_relation_oid(name)`, stable across sessions and restarts.

/// Boolean columns are columns of the two-row table `sqld_truth`, joined
/// on the value they should have: a view's column keeps the declared type
/// of the table column it reads (and only then), so clients get `bool`
/// (`t`/`f`, which psql compares with) instead of 0 and 1.
///
/// Indexes SQLite makes for constraints (`sqlite_autoindex_t_1`) take the
/// names Postgres gives them (`t_pkey`, `t_col_key`): `sqld_index_name`.
///
/// OID columns are CASTs to INTEGER, in every arm of a compound view
/// (SQLite gives a compound's column an affinity only when its arms
/// agree): the affinity makes `oid = '16384'`, as psql writes it, compare
/// as numbers.
///
/// The views in `pg_catalog`. `sqld_relations` and `sqld_indexes` hold
/// what the others share: the user's tables and views, and their indexes,
/// including the one an `INTEGER PRIMARY KEY` (SQLite's rowid) implies.
pub(super) const PG_CATALOG: &str = r#"
CREATE TABLE pg_catalog.sqld_truth (value BOOLEAN PRIMARY KEY);
INSERT INTO pg_catalog.sqld_truth VALUES (0), (1);

CREATE VIEW pg_catalog.sqld_relations AS
  SELECT name, type, ncol FROM pragma_table_list
  WHERE schema = 'main' AND name NOT LIKE 'sqlite\_%' ESCAPE '\';

CREATE VIEW pg_catalog.sqld_indexes AS
  SELECT r.name AS table_name, sqld_index_name(r.name, i.name, i.origin, (SELECT group_concat(k.name, '_') FROM pragma_index_info(i.name, 'main') AS k)) AS index_name, i."unique" AS is_unique,
         i.origin = 'pk' AS is_primary, i.origin,
         (SELECT group_concat(k.cid + 1, ' ') FROM pragma_index_info(i.name, 'main') AS k) AS indkey,
         (SELECT group_concat(k."desc", ' ') FROM pragma_index_xinfo(i.name, 'main') AS k
          WHERE k.key) AS indoption,
         (SELECT count(*) FROM pragma_index_info(i.name, 'main')) AS ncol,
         (SELECT group_concat(k.name, ', ') FROM pragma_index_info(i.name, 'main') AS k) AS columns
  FROM pg_catalog.sqld_relations AS r JOIN pragma_index_list(r.name, 'main') AS i
  WHERE r.type = 'table'
  UNION ALL
  SELECT r.name, r.name || '_pkey', 1, 1, 'pk', group_concat(c.cid + 1, ' '),
         group_concat(0, ' '), count(*),
         group_concat(c.name, ', ')
  FROM pg_catalog.sqld_relations AS r JOIN pragma_table_info(r.name, 'main') AS c
  WHERE r.type = 'table' AND c.pk > 0
    AND NOT EXISTS (SELECT 1 FROM pragma_index_list(r.name, 'main') AS p WHERE p.origin = 'pk')
  GROUP BY r.name;

CREATE VIEW pg_catalog.sqld_index_definitions AS
  SELECT pg_relation_oid(index_name) AS oid,
         'CREATE ' || CASE WHEN is_unique THEN 'UNIQUE ' ELSE '' END || 'INDEX ' || index_name
         || ' ON public.' || table_name || ' USING btree (' || columns || ')' AS indexdef
  FROM pg_catalog.sqld_indexes;

CREATE VIEW pg_catalog.pg_class AS
  SELECT CAST(pg_relation_oid(r.name) AS INTEGER) AS oid, r.name AS relname,
         2200 AS relnamespace, 0 AS reltype, 0 AS reloftype, 10 AS relowner,
         CASE r.type WHEN 'view' THEN 0 ELSE 2 END AS relam, 0 AS relfilenode,
         0 AS reltablespace, 0 AS relpages, -1.0 AS reltuples, 0 AS reltoastrelid,
         hasindex.value AS relhasindex, f.value AS relisshared, 'p' AS relpersistence,
         CASE r.type WHEN 'view' THEN 'v' ELSE 'r' END AS relkind, r.ncol AS relnatts,
         CASE r.type WHEN 'table' THEN json_array_length(sqld_check_constraints(r.name)) ELSE 0 END
           AS relchecks, f.value AS relhasrules, triggers.value AS relhastriggers,
         f.value AS relhassubclass, f.value AS relrowsecurity, f.value AS relforcerowsecurity,
         t.value AS relispopulated, 'd' AS relreplident, f.value AS relispartition,
         0 AS relrewrite, NULL AS relacl, NULL AS reloptions, NULL AS relpartbound,
         0 AS relfrozenxid, 0 AS relminmxid, pg_relation_oid('pg_class') AS tableoid
  FROM pg_catalog.sqld_relations AS r
       JOIN pg_catalog.sqld_truth AS f ON f.value = 0
       JOIN pg_catalog.sqld_truth AS t ON t.value = 1
       JOIN pg_catalog.sqld_truth AS hasindex ON hasindex.value =
            EXISTS (SELECT 1 FROM pg_catalog.sqld_indexes AS i WHERE i.table_name = r.name)
       -- Postgres enforces a foreign key with triggers, and tools look
       -- for foreign keys only on tables that have some.
       JOIN pg_catalog.sqld_truth AS triggers ON triggers.value =
            EXISTS (SELECT 1 FROM pragma_foreign_key_list(r.name, 'main'))
  UNION ALL
  SELECT CAST(pg_relation_oid(i.index_name) AS INTEGER), i.index_name, 2200, 0, 0, 10, 403,
         0, 0, 0, -1.0, 0, f.value, f.value, 'p', 'i', i.ncol, 0, f.value, f.value, f.value,
         f.value, f.value, t.value, 'n', f.value, 0, NULL, NULL, NULL, 0, 0,
         pg_relation_oid('pg_class')
  FROM pg_catalog.sqld_indexes AS i
       JOIN pg_catalog.sqld_truth AS f ON f.value = 0
       JOIN pg_catalog.sqld_truth AS t ON t.value = 1;

CREATE VIEW pg_catalog.pg_attribute AS
  SELECT CAST(pg_relation_oid(r.name) AS INTEGER) AS attrelid, c.name AS attname,
         pg_decltype_oid(c.type) AS atttypid, c.cid + 1 AS attnum, -1 AS attlen,
         -1 AS atttypmod, 0 AS attndims, not_null.value AS attnotnull,
         hasdef.value AS atthasdef, f.value AS atthasmissing, '' AS attidentity,
         '' AS attgenerated, f.value AS attisdropped, t.value AS attislocal, 0 AS attinhcount,
         0 AS attcollation, NULL AS attacl, NULL AS attoptions, NULL AS attfdwoptions,
         -1 AS attstattarget, 'p' AS attstorage, 'x' AS attcompression, 'i' AS attalign,
         NULL AS attmissingval
  FROM pg_catalog.sqld_relations AS r JOIN pragma_table_info(r.name, 'main') AS c
       JOIN pg_catalog.sqld_truth AS f ON f.value = 0
       JOIN pg_catalog.sqld_truth AS t ON t.value = 1
       JOIN pg_catalog.sqld_truth AS not_null ON not_null.value = (c."notnull" OR c.pk > 0)
       JOIN pg_catalog.sqld_truth AS hasdef ON hasdef.value = (c.dflt_value IS NOT NULL);

CREATE VIEW pg_catalog.pg_attrdef AS
  SELECT pg_relation_oid(r.name) * 1000 + c.cid AS oid, CAST(pg_relation_oid(r.name) AS INTEGER) AS adrelid,
         c.cid + 1 AS adnum, c.dflt_value AS adbin, pg_relation_oid('pg_attrdef') AS tableoid
  FROM pg_catalog.sqld_relations AS r JOIN pragma_table_info(r.name, 'main') AS c
  WHERE c.dflt_value IS NOT NULL;

CREATE VIEW pg_catalog.pg_index AS
  SELECT CAST(pg_relation_oid(i.index_name) AS INTEGER) AS indexrelid,
         CAST(pg_relation_oid(i.table_name) AS INTEGER) AS indrelid, i.ncol AS indnatts,
         i.ncol AS indnkeyatts, u.value AS indisunique, f.value AS indnullsnotdistinct,
         p.value AS indisprimary, f.value AS indisexclusion, t.value AS indimmediate,
         f.value AS indisclustered, t.value AS indisvalid, f.value AS indcheckxmin,
         t.value AS indisready, t.value AS indislive, f.value AS indisreplident, i.indkey,
         NULL AS indexprs, NULL AS indpred, NULL AS indcollation, NULL AS indclass,
         i.indoption
  FROM pg_catalog.sqld_indexes AS i
       JOIN pg_catalog.sqld_truth AS f ON f.value = 0
       JOIN pg_catalog.sqld_truth AS t ON t.value = 1
       JOIN pg_catalog.sqld_truth AS u ON u.value = i.is_unique
       JOIN pg_catalog.sqld_truth AS p ON p.value = i.is_primary;

CREATE VIEW pg_catalog.pg_indexes AS
  SELECT 'public' AS schemaname, i.table_name AS tablename, i.index_name AS indexname,
         NULL AS tablespace, d.indexdef
  FROM pg_catalog.sqld_indexes AS i
       JOIN pg_catalog.sqld_index_definitions AS d ON d.oid = pg_relation_oid(i.index_name);

CREATE VIEW pg_catalog.pg_tables AS
  SELECT 'public' AS schemaname, name AS tablename, 'sqld' AS tableowner,
         NULL AS tablespace,
         EXISTS (SELECT 1 FROM pg_catalog.sqld_indexes AS i WHERE i.table_name = name) AS hasindexes,
         0 AS hasrules, 0 AS hastriggers, 0 AS rowsecurity
  FROM pg_catalog.sqld_relations WHERE type = 'table';

CREATE VIEW pg_catalog.pg_views AS
  SELECT 'public' AS schemaname, name AS viewname, 'sqld' AS viewowner,
         sqld_view_definition(name) AS definition
  FROM pg_catalog.sqld_relations WHERE type = 'view';

CREATE VIEW pg_catalog.sqld_view_definitions AS
  SELECT CAST(pg_relation_oid(name) AS INTEGER) AS oid, sqld_view_definition(name) AS definition
  FROM pg_catalog.sqld_relations WHERE type = 'view';

-- A view depends on what it reads, so tools create it after them.
CREATE VIEW pg_catalog.pg_depend AS
  SELECT pg_relation_oid('pg_class') AS classid, CAST(pg_relation_oid(v.name) AS INTEGER) AS objid,
         0 AS objsubid, pg_relation_oid('pg_class') AS refclassid,
         CAST(pg_relation_oid(r.value) AS INTEGER) AS refobjid, 0 AS refobjsubid, 'n' AS deptype
  FROM pg_catalog.sqld_relations AS v JOIN json_each(sqld_view_relations(v.name)) AS r
  WHERE v.type = 'view';

CREATE VIEW pg_catalog.pg_constraint AS
  SELECT CAST(pg_relation_oid(i.index_name) AS INTEGER) AS oid, i.index_name AS conname,
         2200 AS connamespace, CASE WHEN i.is_primary THEN 'p' ELSE 'u' END AS contype,
         f.value AS condeferrable, f.value AS condeferred, t.value AS convalidated,
         CAST(pg_relation_oid(i.table_name) AS INTEGER) AS conrelid, 0 AS contypid,
         CAST(pg_relation_oid(i.index_name) AS INTEGER) AS conindid, 0 AS confrelid,
         '{' || replace(i.indkey, ' ', ',') || '}' AS conkey, NULL AS confkey,
         ' ' AS confupdtype, ' ' AS confdeltype, ' ' AS confmatchtype,
         CASE WHEN i.is_primary THEN 'PRIMARY KEY' ELSE 'UNIQUE' END || ' (' || i.columns || ')'
           AS sqld_definition,
         t.value AS conislocal, 0 AS coninhcount, 0 AS conparentid,
         pg_relation_oid('pg_constraint') AS tableoid
  FROM pg_catalog.sqld_indexes AS i
       JOIN pg_catalog.sqld_truth AS f ON f.value = 0
       JOIN pg_catalog.sqld_truth AS t ON t.value = 1
  -- A unique index made by CREATE UNIQUE INDEX is not a constraint.
  WHERE i.origin IN ('pk', 'u')
  UNION ALL
  SELECT CAST(pg_relation_oid(r.name || '_' || fk.id || '_fkey') AS INTEGER),
         r.name || '_' || fk."from" || '_fkey', 2200, 'f', f.value, f.value, t.value,
         CAST(pg_relation_oid(r.name) AS INTEGER), 0,
         -- The referenced key's index, as Postgres records it.
         (SELECT CAST(pg_relation_oid(x.index_name) AS INTEGER) FROM pg_catalog.sqld_indexes AS x
          WHERE x.table_name = fk."table" AND x.is_primary),
         CAST(pg_relation_oid(fk."table") AS INTEGER),
         '{' || group_concat((SELECT c.cid + 1 FROM pragma_table_info(r.name, 'main') AS c WHERE c.name = fk."from"), ',') || '}',
         '{' || group_concat((SELECT c.cid + 1 FROM pragma_table_info(fk."table", 'main') AS c WHERE c.name = fk."to"), ',') || '}',
         sqld_fk_action(fk.on_update), sqld_fk_action(fk.on_delete), 's',
         'FOREIGN KEY (' || group_concat(fk."from", ', ') || ') REFERENCES ' || fk."table"
           || '(' || group_concat(coalesce(fk."to", 'rowid'), ', ') || ')',
         t.value, 0, 0, pg_relation_oid('pg_constraint')
  FROM pg_catalog.sqld_relations AS r JOIN pragma_foreign_key_list(r.name, 'main') AS fk
       JOIN pg_catalog.sqld_truth AS f ON f.value = 0
       JOIN pg_catalog.sqld_truth AS t ON t.value = 1
  GROUP BY r.name, fk.id
  UNION ALL
  SELECT CAST(pg_relation_oid(r.name || '.' || (c.value ->> 'name')) AS INTEGER),
         c.value ->> 'name', 2200, 'c', f.value, f.value, t.value,
         CAST(pg_relation_oid(r.name) AS INTEGER), 0, 0, 0, NULL, NULL, ' ', ' ', ' ',
         'CHECK (' || (c.value ->> 'expr') || ')', t.value, 0, 0, pg_relation_oid('pg_constraint')
  FROM pg_catalog.sqld_relations AS r JOIN json_each(sqld_check_constraints(r.name)) AS c
       JOIN pg_catalog.sqld_truth AS f ON f.value = 0
       JOIN pg_catalog.sqld_truth AS t ON t.value = 1
  WHERE r.type = 'table';

CREATE VIEW pg_catalog.pg_settings AS
  SELECT name, current_setting(name) AS setting, NULL AS unit, 'Ungrouped' AS category,
         NULL AS short_desc, 'user' AS context, 'string' AS vartype, 'default' AS source
  FROM (SELECT value AS name FROM json_each(
    '["server_version","server_encoding","client_encoding","datestyle","timezone","integer_datetimes","standard_conforming_strings","transaction_isolation","default_transaction_isolation","transaction_read_only","search_path","application_name","extra_float_digits","max_identifier_length","intervalstyle","lc_messages","statement_timeout","server_version_num","lock_timeout","max_index_keys"]'));

-- Booleans read from sqld_truth, so they are described as bool (psql's
-- \du compares them with 't').
CREATE VIEW pg_catalog.pg_roles AS
  SELECT 'sqld' AS rolname, t.value AS rolsuper, t.value AS rolinherit,
         t.value AS rolcreaterole, t.value AS rolcreatedb, t.value AS rolcanlogin,
         f.value AS rolreplication, -1 AS rolconnlimit, '********' AS rolpassword,
         NULL AS rolvaliduntil, f.value AS rolbypassrls, NULL AS rolconfig, 10 AS oid
  FROM pg_catalog.sqld_truth AS f JOIN pg_catalog.sqld_truth AS t ON t.value = 1
  WHERE f.value = 0;

CREATE VIEW pg_catalog.pg_user AS
  SELECT rolname AS usename, oid AS usesysid, rolcreatedb AS usecreatedb,
         rolsuper AS usesuper, rolreplication AS userepl, rolbypassrls AS usebypassrls,
         rolpassword AS passwd, rolvaliduntil AS valuntil, rolconfig AS useconfig
  FROM pg_catalog.pg_roles;
"#;

/// `information_schema`, attached beside `pg_catalog`, over the same
/// pragmas (a view may only read its own database's tables).
pub(super) const INFORMATION_SCHEMA: &str = r#"
CREATE VIEW information_schema.sqld_relations AS
  SELECT name, type FROM pragma_table_list
  WHERE schema = 'main' AND name NOT LIKE 'sqlite\_%' ESCAPE '\';

CREATE VIEW information_schema.schemata AS
  SELECT current_database() AS catalog_name, value AS schema_name, 'sqld' AS schema_owner,
         NULL AS default_character_set_catalog, NULL AS default_character_set_schema,
         NULL AS default_character_set_name, NULL AS sql_path
  FROM json_each('["public","pg_catalog","information_schema"]');

CREATE VIEW information_schema.tables AS
  SELECT current_database() AS table_catalog, 'public' AS table_schema, name AS table_name,
         CASE type WHEN 'view' THEN 'VIEW' ELSE 'BASE TABLE' END AS table_type,
         NULL AS self_referencing_column_name, NULL AS reference_generation,
         NULL AS user_defined_type_catalog, NULL AS user_defined_type_schema,
         NULL AS user_defined_type_name,
         CASE type WHEN 'view' THEN 'NO' ELSE 'YES' END AS is_insertable_into,
         'NO' AS is_typed, NULL AS commit_action
  FROM information_schema.sqld_relations;

CREATE VIEW information_schema.views AS
  SELECT current_database() AS table_catalog, 'public' AS table_schema, name AS table_name,
         sqld_view_definition(name) AS view_definition, 'NONE' AS check_option, 'NO' AS is_updatable,
         'NO' AS is_insertable_into, 'NO' AS is_trigger_updatable,
         'NO' AS is_trigger_deletable, 'NO' AS is_trigger_insertable_into
  FROM information_schema.sqld_relations WHERE type = 'view';

CREATE VIEW information_schema.columns AS
  SELECT current_database() AS table_catalog, 'public' AS table_schema, r.name AS table_name,
         c.name AS column_name, c.cid + 1 AS ordinal_position, c.dflt_value AS column_default,
         CASE WHEN c."notnull" OR c.pk > 0 THEN 'NO' ELSE 'YES' END AS is_nullable,
         format_type(pg_decltype_oid(c.type), NULL) AS data_type,
         NULL AS character_maximum_length, NULL AS numeric_precision, NULL AS numeric_scale,
         current_database() AS udt_catalog, 'pg_catalog' AS udt_schema,
         pg_decltype_name(c.type) AS udt_name, 'NO' AS is_identity, 'NEVER' AS is_generated,
         CASE r.type WHEN 'view' THEN 'NO' ELSE 'YES' END AS is_updatable
  FROM information_schema.sqld_relations AS r JOIN pragma_table_info(r.name, 'main') AS c;

CREATE VIEW information_schema.sqld_key_columns AS
  SELECT r.name AS table_name,
         sqld_index_name(r.name, i.name, i.origin, (SELECT group_concat(k.name, '_') FROM pragma_index_info(i.name, 'main') AS k)) AS constraint_name,
         CASE i.origin WHEN 'pk' THEN 'PRIMARY KEY' ELSE 'UNIQUE' END AS constraint_type,
         k.name AS column_name, k.seqno + 1 AS position
  FROM information_schema.sqld_relations AS r JOIN pragma_index_list(r.name, 'main') AS i
       JOIN pragma_index_info(i.name, 'main') AS k
  WHERE r.type = 'table' AND i.origin IN ('pk', 'u')
  UNION ALL
  SELECT r.name, r.name || '_pkey', 'PRIMARY KEY', c.name, c.pk
  FROM information_schema.sqld_relations AS r JOIN pragma_table_info(r.name, 'main') AS c
  WHERE r.type = 'table' AND c.pk > 0
    AND NOT EXISTS (SELECT 1 FROM pragma_index_list(r.name, 'main') AS p WHERE p.origin = 'pk')
  UNION ALL
  SELECT r.name, r.name || '_' || f."from" || '_fkey', 'FOREIGN KEY', f."from", f.seq + 1
  FROM information_schema.sqld_relations AS r JOIN pragma_foreign_key_list(r.name, 'main') AS f;

CREATE VIEW information_schema.table_constraints AS
  SELECT DISTINCT current_database() AS constraint_catalog, 'public' AS constraint_schema,
         constraint_name, current_database() AS table_catalog, 'public' AS table_schema,
         table_name, constraint_type, 'NO' AS is_deferrable, 'NO' AS initially_deferred,
         'YES' AS enforced, NULL AS nulls_distinct
  FROM information_schema.sqld_key_columns;

CREATE VIEW information_schema.key_column_usage AS
  SELECT current_database() AS constraint_catalog, 'public' AS constraint_schema,
         constraint_name, current_database() AS table_catalog, 'public' AS table_schema,
         table_name, column_name, position AS ordinal_position,
         NULL AS position_in_unique_constraint
  FROM information_schema.sqld_key_columns;
"#;
