// What tools and ORMs ask pgjdbc about a connection and its schema, run by
// tests/jdbc.rs with the JDBC URL as its argument: the transaction
// isolation, and DatabaseMetaData's tables and columns, which pgjdbc
// answers from pg_catalog.
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
                s.execute("create table entry(account_id integer, seq integer, amount real, primary key (account_id, seq))");
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
        }
        System.out.println("ok");
    }
}
