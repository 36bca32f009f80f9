mod common;

#[tokio::test]
async fn simple_query_round_trip() {
    let sqld = common::Sqld::start();
    let client = sqld.connect().await;
    let rows = client.simple_query("select 1 as one").await.unwrap();
    let row = match &rows[1] {
        tokio_postgres::SimpleQueryMessage::Row(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(row.get("one"), Some("1"));
}
