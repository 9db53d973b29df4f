// The same measurement as bench_dispatch, on graphile-worker: K idle workers
// (concurrency K) LISTEN on the same PostgreSQL; one client adds N jobs one
// after another (each once the previous one started) and the time from the
// addJob call to the task function's start is recorded. Prints one JSON line.
//   node graphile_dispatch.js CONNECTION_STRING K N WARMUP
const { run, makeWorkerUtils, Logger } = require("graphile-worker");

const [connectionString, k, n, warmup] = [process.argv[2], +process.argv[3], +process.argv[4], +process.argv[5]];
const quiet = new Logger(() => () => {});
const started = new Map();  // job key -> [time, resolve]

async function main() {
  const utils = await makeWorkerUtils({ connectionString, logger: quiet });
  await utils.migrate();
  const runner = await run({
    connectionString,
    concurrency: k,
    noHandleSignals: true,
    pollInterval: 2000,  // its default; new jobs arrive by LISTEN/NOTIFY
    logger: quiet,
    taskList: {
      bench: async (payload) => {
        const now = process.hrtime.bigint();
        const waiter = started.get(payload.i);
        if (waiter) waiter(now);
      },
    },
  });
  const latencies = [];
  for (let i = 0; i < warmup + n; i++) {
    const done = new Promise((resolve) => started.set(i, resolve));
    const t0 = process.hrtime.bigint();
    await utils.addJob("bench", { i });
    const t1 = await done;
    started.delete(i);
    if (i >= warmup) latencies.push(Number(t1 - t0) / 1e6);
  }
  await runner.stop();
  await utils.release();
  latencies.sort((a, b) => a - b);
  const q = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
  const mean = latencies.reduce((a, b) => a + b, 0) / latencies.length;
  console.log(JSON.stringify({ workers: k, submissions: latencies.length, p50_ms: q(0.5), p90_ms: q(0.9),
                               p99_ms: q(0.99), max_ms: q(1), mean_ms: mean }));
}

main().catch((e) => { console.error(e); process.exit(1); });
