//! Transfer benchmark: one server fetches a large file (1 GiB by default) from another over
//! iroh on 127.0.0.1, next to a raw iroh bi-stream carrying the same bytes between the same
//! two endpoints in the same run.
//!
//! ```text
//! cargo run --release -p archive-benches --features net --bin transfer -- [--size-mib 1024] [--runs 2] [--dir DIR] [--json] [--sync-only]
//! ```
//! The sync side does everything a real pull does: reconcile, fetch the entry, the manifest and
//! every chunk as bao-verified streams, write the chunks to the store, make them durable
//! (syncfs) and commit. The raw side only moves the bytes from the sender's memory into the
//! receiver's memory. The ratio (sync throughput / raw throughput) is what the protocol, the
//! verification and the store cost over the bare transport.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use archive_benches::net::Server;
use archive_benches::{fill_pseudo_random, mb_per_s, process_cpu_seconds};
use archive_core::{NoProgress, Store};
use clap::Parser;
use iroh::endpoint::Connection;
use iroh::protocol::{AcceptError, ProtocolHandler};

/// The raw side's protocol: on each bi-stream, send the whole buffer and finish.
const RAW_ALPN: &[u8] = b"archive-bench/raw/0";

#[derive(Debug, Clone)]
struct RawSender {
    data: Arc<Vec<u8>>,
}

impl ProtocolHandler for RawSender {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        while let Ok((mut send, mut recv)) = conn.accept_bi().await {
            let mut request = [0u8; 1];
            if recv.read_exact(&mut request).await.is_err() {
                break;
            }
            for piece in self.data.chunks(1 << 20) {
                if send.write_all(piece).await.is_err() {
                    return Ok(());
                }
            }
            let _ = send.finish();
            let _ = send.stopped().await;
        }
        Ok(())
    }
}

/// Fetches the raw sender's buffer over one bi-stream; returns the bytes received. With a
/// file, the bytes are also hashed with BLAKE3 and written to it, then fsynced: the least a
/// receiver that keeps what it gets must do.
async fn raw_fetch(from: &Server, to: &Server, file: Option<&std::path::Path>) -> u64 {
    let conn = to
        .endpoint()
        .connect(from.endpoint().addr(), RAW_ALPN)
        .await
        .expect("raw connect");
    let (mut send, mut recv) = conn.open_bi().await.expect("raw stream");
    send.write_all(&[1]).await.expect("raw request");
    let _ = send.finish();
    let mut out = file.map(|f| std::fs::File::create(f).expect("create raw copy"));
    let mut hasher = blake3::Hasher::new();
    let mut total = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    while let Some(n) = recv.read(&mut buf).await.expect("raw read") {
        total += n as u64;
        if let Some(out) = &mut out {
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).expect("write raw copy");
        }
    }
    if let Some(out) = out {
        out.sync_all().expect("fsync raw copy");
        std::hint::black_box(hasher.finalize());
    }
    conn.close(0u32.into(), b"done");
    total
}

#[derive(Debug, Parser)]
#[command(about = "A one-file sync over iroh, against a raw QUIC stream of the same bytes")]
struct Args {
    /// Size of the file in MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// Runs of each side.
    #[arg(long, default_value_t = 2)]
    runs: usize,
    /// Where the temporary files go.
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Only the archive sync (no raw streams): for profiling it alone.
    #[arg(long)]
    sync_only: bool,
}

fn main() {
    let args = Args::parse();
    let (size_mib, runs, json) = (args.size_mib, args.runs, args.json);
    let tmp = match &args.dir {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .expect("temporary folder");

    let size = (size_mib << 20) as usize;
    let mut data = vec![0u8; size];
    fill_pseudo_random(&mut data, 42);
    let file = tmp.path().join("big.bin");
    std::fs::write(&file, &data).expect("write input");
    let source_dir = tmp.path().join("source");
    Store::init(&source_dir)
        .expect("init source")
        .collection("bench")
        .unwrap()
        .add_path(&file, None, &mut NoProgress)
        .expect("add");
    std::fs::remove_file(&file).expect("remove input");
    let data = Arc::new(data);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let [raw, stored, sync] = rt.block_on(async {
        let raw = RawSender { data };
        let source = Server::start_with(&source_dir, Some((RAW_ALPN, raw))).await;
        let mut best = [Timing::NONE; 3];
        // Interleave the three so all see the same machine state; each sync goes into a
        // fresh store.
        for run in 0..runs {
            let dest_dir = tmp.path().join(format!("dest{run}"));
            let dest = Server::start(&dest_dir).await;
            source.pair(&dest);

            if !args.sync_only {
                let (bytes, t) = Timing::of(raw_fetch(&source, &dest, None)).await;
                assert_eq!(bytes, size as u64, "the raw stream moved every byte");
                best[0] = best[0].best(t);

                let file = tmp.path().join(format!("raw{run}.bin"));
                let (bytes, t) = Timing::of(raw_fetch(&source, &dest, Some(&file))).await;
                assert_eq!(bytes, size as u64, "the raw stream moved every byte");
                std::fs::remove_file(&file).expect("remove raw copy");
                best[1] = best[1].best(t);
            }

            let (report, t) = Timing::of(dest.sync_from(&source, "bench", true, false)).await;
            assert!(
                report.0.bytes_received >= size as u64,
                "the sync moved the file"
            );
            let check = dest.node.store().verify().expect("verify");
            assert!(check.bad_blobs.is_empty() && check.damaged_keys.is_empty());
            best[2] = best[2].best(t);
            dest.shutdown().await;
            std::fs::remove_dir_all(&dest_dir).expect("remove dest");
        }
        source.shutdown().await;
        best
    });
    let mbs = |t: &Timing| mb_per_s(size as u64, t.secs);
    let per_gib = |t: &Timing| t.cpu_secs / (size as f64 / (1u64 << 30) as f64);
    if json {
        // With --sync-only the raw streams did not run: their figures are null.
        let figure = |x: f64| {
            if args.sync_only {
                "null".to_string()
            } else {
                format!("{x:.3}")
            }
        };
        println!(
            "{{\"size_bytes\":{size},\"runs\":{runs},\"raw_secs\":{},\"raw_cpu_secs\":{},\"raw_stored_secs\":{},\"raw_stored_cpu_secs\":{},\"sync_secs\":{:.3},\"sync_cpu_secs\":{:.3},\"ratio\":{},\"ratio_to_stored\":{}}}",
            figure(raw.secs), figure(raw.cpu_secs), figure(stored.secs), figure(stored.cpu_secs),
            sync.secs, sync.cpu_secs,
            figure(raw.secs / sync.secs), figure(stored.secs / sync.secs)
        );
    } else {
        println!("transfer of {size_mib} MiB over iroh on 127.0.0.1 (both endpoints in this process), best of {runs}");
        println!("{:<44} {:>8} {:>9} {:>12}", "", "s", "MB/s", "CPU s/GiB");
        let rows = [
            ("raw iroh bi-stream, into memory", &raw),
            ("raw bi-stream, BLAKE3 + file + fsync", &stored),
            ("archive sync (pull, verified, durable)", &sync),
        ];
        // With --sync-only the raw streams did not run: only the sync's row means anything.
        let measured = if args.sync_only {
            &rows[2..]
        } else {
            &rows[..]
        };
        for &(name, t) in measured {
            println!(
                "{name:<44} {:>8.3} {:>9.1} {:>12.2}",
                t.secs,
                mbs(t),
                per_gib(t)
            );
        }
        if !args.sync_only {
            println!(
                "ratio sync/raw-stored {:.3} (goal >= 0.9); sync/raw {:.3}",
                stored.secs / sync.secs,
                raw.secs / sync.secs
            );
        }
    }
}

/// Wall and CPU time of one measured run (the CPU time of the whole process: both endpoints).
#[derive(Debug, Clone, Copy)]
struct Timing {
    secs: f64,
    cpu_secs: f64,
}

impl Timing {
    const NONE: Timing = Timing {
        secs: f64::MAX,
        cpu_secs: f64::MAX,
    };

    async fn of<T>(f: impl std::future::Future<Output = T>) -> (T, Timing) {
        let (cpu, start) = (process_cpu_seconds(), Instant::now());
        let out = f.await;
        let t = Timing {
            secs: start.elapsed().as_secs_f64(),
            cpu_secs: process_cpu_seconds() - cpu,
        };
        (out, t)
    }

    fn best(self, other: Timing) -> Timing {
        if other.secs < self.secs {
            other
        } else {
            self
        }
    }
}
