// What tools and ORMs ask pgjdbc about a connection and its schema, run by
// tests/jdbc.rs with the JDBC URL as its argument: the transaction
// isolation, and DatabaseMetaData's tables, columns, primary keys, indexes
// and foreign keys, which pgjdbc answers from pg_catalog (the keys through
// information_schema._pg_expandarray, a set-returning function in a
// SELECT list).
import java.sql.*;
import java.util.*;

public class Metadata {
    static void check(boolean ok, String what) {
        if (!ok) throw new AssertionError(what);
    }

    public static void main(String[] args) throws Exception {
        try (Connection c = DriverManager.getConnection(args[0], "sqld", "")) {
            check(c.getTransactionIsolation() == Connection.TRANSACTION_SERIALIZABLE,
                    "isolation is serializable, not " + c.getTransactionIsolation());
            try (Statement s = c.createStatement()) {
                s.execute("create table account(id integer primary key, owner text not null, balance real)");
                s.execute("create table entry(account_id integer references account(id) on delete cascade, seq integer, amount real, primary key (account_id, seq))");
                s.execute("create index entry_amount on entry(amount desc)");
            }
            DatabaseMetaData meta = c.getMetaData();
            List<String> tables = new ArrayList<>();
            try (ResultSet r = meta.getTables(null, "public", "%", new String[] {"TABLE"})) {
                while (r.next()) {
                    tables.add(r.getString("TABLE_NAME") + ":" + r.getString("TABLE_TYPE"));
                }
            }
            check(tables.equals(List.of("account:TABLE", "entry:TABLE")), "tables " + tables);
            List<String> columns = new ArrayList<>();
            try (ResultSet r = meta.getColumns(null, "public", "account", "%")) {
                while (r.next()) {
                    columns.add(r.getString("COLUMN_NAME") + ":" + r.getString("TYPE_NAME") + ":"
                            + r.getInt("NULLABLE") + ":" + r.getInt("ORDINAL_POSITION"));
                }
            }
            check(columns.equals(List.of("id:int8:0:1", "owner:text:0:2", "balance:float8:1:3")),
                    "columns " + columns);
            List<String> keys = new ArrayList<>();
            try (ResultSet r = meta.getPrimaryKeys(null, "public", "entry")) {
                while (r.next()) {
                    keys.add(r.getString("COLUMN_NAME") + ":" + r.getInt("KEY_SEQ") + ":" + r.getString("PK_NAME"));
                }
            }
            check(keys.equals(List.of("account_id:1:entry_pkey", "seq:2:entry_pkey")), "primary keys " + keys);
            List<String> indexes = new ArrayList<>();
            try (ResultSet r = meta.getIndexInfo(null, "public", "entry", false, false)) {
                while (r.next()) {
                    indexes.add(r.getString("INDEX_NAME") + ":" + r.getBoolean("NON_UNIQUE") + ":"
                            + r.getInt("ORDINAL_POSITION") + ":" + r.getString("COLUMN_NAME") + ":"
                            + r.getString("ASC_OR_DESC"));
                }
            }
            check(indexes.equals(List.of("entry_pkey:false:1:account_id:A", "entry_pkey:false:2:seq:A",
                    "entry_amount:true:1:amount:D")), "indexes " + indexes);
            for (ResultSet r : List.of(meta.getImportedKeys(null, "public", "entry"),
                    meta.getExportedKeys(null, "public", "account"))) {
                List<String> fks = new ArrayList<>();
                while (r.next()) {
                    fks.add(r.getString("FKTABLE_NAME") + "." + r.getString("FKCOLUMN_NAME") + "->"
                            + r.getString("PKTABLE_NAME") + "." + r.getString("PKCOLUMN_NAME") + ":"
                            + r.getInt("KEY_SEQ") + ":" + r.getInt("DELETE_RULE") + ":" + r.getString("PK_NAME"));
                }
                r.close();
                check(fks.equals(List.of("entry.account_id->account.id:1:"
                        + DatabaseMetaData.importedKeyCascade + ":account_pkey")), "foreign keys " + fks);
            }
        }
        System.out.println("ok");
    }
}
