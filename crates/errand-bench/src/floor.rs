//! What this machine allows before errand does any work of its own: the cost of an HTTP
//! request that does nothing (`GET /healthz` through the same server, middleware and
//! connection handling as an enqueue) and of a durable commit shaped like SQLite's (frames
//! appended to a write-ahead log, then `fdatasync`). An enqueue needs one of each, so their
//! sum is the floor its cost is judged against. On PostgreSQL the floors are a prepared
//! `SELECT 1` (one round trip) and a one-row insert committed durably, whose machine CPU
//! includes the database's own work.

use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use errand_client::Client;
use errand_testkit::{pg_connect, PgSchema};
use hyper::body::Bytes;

use super::enqueue::drive;
use super::raw_http::RawConnection;
use super::server_cpu;
use super::stats::{histogram, CpuSpent, Figures};

/// `clients` loops, each on its own keep-alive connection, asking `GET /healthz`.
pub async fn http(nodes: &[Client], clients: usize, duration: Duration) -> anyhow::Result<Figures> {
    let conns = RawConnection::spread(nodes, clients).await?;
    drive(conns, duration, |mut conn: RawConnection| async move {
        let status = conn
            .send(hyper::Method::GET, "/healthz", Bytes::new())
            .await?;
        anyhow::ensure!(status == 200, "/healthz answered {status}");
        Ok((conn, 1))
    })
    .await
}

/// SQLite's page size, and the header it writes before each page in its write-ahead log.
const PAGE: usize = 4096;
const FRAME_HEADER: usize = 24;

/// Frames the log holds before it starts over from its beginning, as SQLite's log does
/// after a checkpoint (its default checkpoints at 1,000 pages), so that the writes
/// overwrite blocks the file already has.
const LOG_FRAMES: u64 = 1000;

/// Commits of `frames` pages each for `duration` on one thread: each frame written as
/// SQLite writes it (its header, then its page: two `pwrite` calls), then one
/// `fdatasync`. Counts commits; the CPU is the thread's own, kernel work included.
pub async fn disk(frames: u64, duration: Duration) -> anyhow::Result<Figures> {
    tokio::task::spawn_blocking(move || disk_blocking(frames, duration)).await?
}

fn disk_blocking(frames: u64, duration: Duration) -> anyhow::Result<Figures> {
    let dir = tempfile::tempdir()?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(dir.path().join("log"))?;
    let frame = (FRAME_HEADER + PAGE) as u64;
    // Give the file its blocks first: SQLite's log is reused, not grown, once it is warm.
    let zeros = vec![0u8; PAGE];
    for i in 0..LOG_FRAMES * frame / PAGE as u64 + 1 {
        file.write_all_at(&zeros, i * PAGE as u64)?;
    }
    file.sync_all()?;

    let header = [7u8; FRAME_HEADER];
    let page = vec![9u8; PAGE];
    let mut latency = histogram();
    let mut next = 0u64;
    let mut commits = 0u64;
    let cpu_before = server_cpu::of_this_thread();
    let start = Instant::now();
    while start.elapsed() < duration {
        let t = Instant::now();
        for _ in 0..frames {
            let at = (next % LOG_FRAMES) * frame;
            file.write_all_at(&header, at)?;
            file.write_all_at(&page, at + FRAME_HEADER as u64)?;
            next += 1;
        }
        file.sync_data()?;
        commits += 1;
        latency.saturating_record(t.elapsed().as_micros() as u64);
    }
    let elapsed = start.elapsed();
    let thread = server_cpu::of_this_thread()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    Ok(Figures {
        jobs: commits,
        elapsed,
        latency: Some(latency),
        cpu: CpuSpent {
            bench: thread,
            ..CpuSpent::default()
        },
    })
}

/// `clients` connections, each asking a prepared `SELECT 1` in a loop: a round trip to
/// PostgreSQL and the least a statement costs it.
pub async fn postgres_round_trip(
    url: &str,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<Figures> {
    postgres_loop(url, "SELECT 1", clients, duration).await
}

/// The table [`postgres_commit`] inserts into, in the deployment's schema (dropped with it).
pub async fn postgres_table(schema: &PgSchema) -> anyhow::Result<()> {
    let client = pg_connect(&schema.url).await.map_err(anyhow::Error::msg)?;
    client
        .batch_execute(&format!(
            "CREATE TABLE \"{}\".bench_floor (id bigserial PRIMARY KEY, v text NOT NULL)",
            schema.name
        ))
        .await?;
    Ok(())
}

/// `clients` connections, each inserting one row per statement, each its own durable
/// commit (the server's `synchronous_commit`, on by default): the least a write costs.
pub async fn postgres_commit(
    schema: &PgSchema,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<Figures> {
    let sql = format!(
        "INSERT INTO \"{}\".bench_floor (v) VALUES ('x')",
        schema.name
    );
    postgres_loop(&schema.url, &sql, clients, duration).await
}

/// `clients` connections running the prepared `sql` one at a time each.
async fn postgres_loop(
    url: &str,
    sql: &str,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<Figures> {
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        let client = pg_connect(url).await.map_err(anyhow::Error::msg)?;
        let statement = client.prepare(sql).await?;
        conns.push(std::sync::Arc::new((client, statement)));
    }
    drive(conns, duration, |conn| async move {
        let (client, statement) = &*conn;
        client.execute(statement, &[]).await?;
        Ok((conn, 1))
    })
    .await
}
