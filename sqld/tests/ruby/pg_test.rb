# ruby-pg against sqld, with the basic type maps Rails-style applications
# install: they read every type's input function from pg_type joined with
# pg_proc at connect, then decode results and encode parameters by OID.
require 'minitest/autorun'
require 'pg'

class SqldRubyPgTest < Minitest::Test
  def setup
    @conn = PG.connect(ENV.fetch('SQLD_TEST_DSN'), connect_timeout: 5)
    @conn.type_map_for_results = PG::BasicTypeMapForResults.new(@conn)
    @conn.type_map_for_queries = PG::BasicTypeMapForQueries.new(@conn)
  end

  def teardown
    @conn.close
  end

  def test_values_are_decoded_by_their_types
    @conn.exec('DROP TABLE IF EXISTS rb_values')
    @conn.exec('CREATE TABLE rb_values (id INTEGER PRIMARY KEY, name TEXT, at TIMESTAMP, ok BOOLEAN, f FLOAT8, data BYTEA)')
    at = Time.utc(2024, 1, 2, 3, 4, 5)
    @conn.exec_params('INSERT INTO rb_values VALUES ($1, $2, $3, $4, $5, $6)',
                      [1, 'ann', at, true, 1.5, PG::TextEncoder::Bytea.new.encode("\x00\xff".b)])
    row = @conn.exec_params('SELECT id, name, at, ok, f, data FROM rb_values WHERE id = $1', [1]).first
    assert_equal 1, row['id']
    assert_equal 'ann', row['name']
    assert_equal at.to_i, row['at'].to_i
    assert_equal true, row['ok']
    assert_equal 1.5, row['f']
    assert_equal "\x00\xff".b, row['data']
    assert_equal 1, @conn.exec('SELECT count(*) FROM rb_values').getvalue(0, 0)
  end

  def test_prepared_statements_and_errors
    @conn.exec('DROP TABLE IF EXISTS rb_prepared')
    @conn.exec('CREATE TABLE rb_prepared (id INTEGER PRIMARY KEY, name TEXT)')
    @conn.prepare('rb_insert', 'INSERT INTO rb_prepared (id, name) VALUES ($1, $2)')
    (1..10).each { |i| @conn.exec_prepared('rb_insert', [i, "n#{i}"]) }
    assert_equal 10, @conn.exec('SELECT count(*) FROM rb_prepared').getvalue(0, 0)
    error = assert_raises(PG::UniqueViolation) { @conn.exec_prepared('rb_insert', [1, 'again']) }
    assert_equal '23505', error.result.error_field(PG::PG_DIAG_SQLSTATE)
    @conn.transaction do |c|
      c.exec("INSERT INTO rb_prepared VALUES (100, 'in')")
    end
    assert_raises(RuntimeError) do
      @conn.transaction do |c|
        c.exec("INSERT INTO rb_prepared VALUES (101, 'out')")
        raise 'undo'
      end
    end
    assert_equal 11, @conn.exec('SELECT count(*) FROM rb_prepared').getvalue(0, 0)
  end
end
