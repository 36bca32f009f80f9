// What a Java application does through pgjdbc, run by tests/jdbc.rs with
// the JDBC URL as its argument: prepared statements past pgjdbc's
// prepareThreshold (from the fifth execution it uses a named server-side
// statement, described before it runs), a transaction, and types.
import java.sql.*;

public class Smoke {
    static void check(boolean ok, String what) {
        if (!ok) throw new AssertionError(what);
    }

    public static void main(String[] args) throws Exception {
        try (Connection c = DriverManager.getConnection(args[0], "sqld", "")) {
            try (Statement s = c.createStatement()) {
                s.execute("create table t(id integer primary key, name text, score real)");
            }
            try (PreparedStatement insert =
                    c.prepareStatement("insert into t(id, name, score) values (?, ?, ?)")) {
                for (int i = 1; i <= 10; i++) {
                    insert.setInt(1, i);
                    insert.setString(2, "row " + i);
                    insert.setDouble(3, i * 1.5);
                    check(insert.executeUpdate() == 1, "execution " + i + " inserts one row");
                }
            }
            c.setAutoCommit(false);
            try (PreparedStatement update = c.prepareStatement("update t set score = score + ? where id = ?")) {
                for (int i = 1; i <= 10; i++) {
                    update.setDouble(1, 1.0);
                    update.setInt(2, i);
                    check(update.executeUpdate() == 1, "update " + i + " changes one row");
                }
            }
            c.commit();
            c.setAutoCommit(true);
            try (PreparedStatement select = c.prepareStatement("select name, score from t where id = ?")) {
                for (int i = 1; i <= 10; i++) {
                    select.setInt(1, i);
                    try (ResultSet r = select.executeQuery()) {
                        check(r.next(), "row " + i + " is there");
                        check(r.getString(1).equals("row " + i), "name of row " + i);
                        check(r.getDouble(2) == i * 1.5 + 1.0, "score of row " + i);
                        check(!r.next(), "one row for id " + i);
                    }
                }
            }
            try (Statement s = c.createStatement();
                    ResultSet r = s.executeQuery("select count(*) from t")) {
                r.next();
                check(r.getLong(1) == 10, "ten rows, not " + r.getLong(1));
            }
        }
        System.out.println("ok");
    }
}
