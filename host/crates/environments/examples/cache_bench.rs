//! Times the environment cache: one build of a definition with uv (into a fresh cache
//! directory), then N cache hits; prints one JSON line. Used by `bench/environments.sh`.
//!
//! `cache_bench DIR REQUIREMENT... [--hits N]`

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use atrium_environments::{Cache, Definition, find_uv};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut hits = 50usize;
    if let Some(i) = args.iter().position(|a| a == "--hits") {
        hits = args.get(i + 1).ok_or("--hits N")?.parse()?;
        args.drain(i..i + 2);
    }
    let dir = args
        .first()
        .ok_or("usage: cache_bench DIR REQUIREMENT...")?
        .clone();
    let def = Definition::new(None, args[1..].to_vec())?;
    let cache = Cache::new(&dir, find_uv(None)?)?;
    let no = AtomicBool::new(false);
    let t = Instant::now();
    let built = cache.ensure(&def, &|_| {}, &no).await?;
    let build_s = t.elapsed().as_secs_f64();
    assert!(!built.hit, "the cache directory must start empty");
    let mut ms = Vec::with_capacity(hits);
    for _ in 0..hits {
        let t = Instant::now();
        let r = cache.ensure(&def, &|_| {}, &no).await?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(r.hit);
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{{\"build_s\": {build_s:.3}, \"hit_median_ms\": {:.4}, \"hit_max_ms\": {:.4}, \"hits\": {hits}}}",
        ms[ms.len() / 2],
        ms[ms.len() - 1]
    );
    Ok(())
}
