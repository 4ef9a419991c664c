//! Nodes that start together against an empty database all come up: migrations run once,
//! under the advisory lock, and nobody trips over a half-made schema.

use errand_store::Store;
use errand_store_postgres::{PgOptions, PgStore};
use errand_testkit::PgSchema;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_migrate_once() {
    let Some(schema) = PgSchema::create("nodes_starting_together_migrate_once").await else {
        return;
    };
    let options = PgOptions {
        schema: schema.name.clone(),
        pool_size: 2,
        ..PgOptions::new(&schema.url)
    };
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let options = options.clone();
            tokio::spawn(async move { PgStore::connect(&options).await })
        })
        .collect();
    let mut stores = Vec::new();
    for s in starts {
        stores.push(s.await.expect("join").expect("every node starts"));
    }
    for s in &stores {
        s.ping().await.expect("ready");
    }
    let client = errand_testkit::pg_connect(&schema.url)
        .await
        .expect("connect");
    let row = client
        .query_one(
            &format!(
                "SELECT COUNT(*), MAX(version)::bigint FROM \"{}\".errand_migrations",
                schema.name
            ),
            &[],
        )
        .await
        .expect("count");
    let (applied, last): (i64, i64) = (row.get(0), row.get(1));
    assert!(last >= 2, "every migration ran");
    assert_eq!(applied, last, "each migration ran exactly once");
}

#[tokio::test]
async fn bad_schema_names_are_refused() {
    let err = PgStore::connect(&PgOptions {
        schema: "x; DROP TABLE jobs".into(),
        ..PgOptions::new("postgres://postgres@127.0.0.1:5432/test")
    })
    .await
    .err()
    .expect("refused");
    assert!(matches!(
        err,
        errand_store_postgres::ConnectError::BadSchema(_)
    ));
}
