import { Worker } from "node:worker_threads";

/** One nearest-neighbour query as the REST API takes it: where it goes, as whom, and its body. */
export interface ProbeRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
  /** A probe that takes longer is abandoned and counts as failed. */
  timeoutMs: number;
}

/**
 * What the probe thread reports: one query's latency, or why it failed and after how long (with the HTTP status when
 * the server answered one).
 */
export type ProbeMessage = { ms: number; error?: undefined } | { ms: number; error: string; status?: number };

/**
 * The probe thread: plain CommonJS, so it runs the same from TypeScript sources (tests) and the built files. It times
 * `count` queries when asked (`spacedMs` apart), then one every `everyMs` until it is terminated.
 */
const THREAD = `
const { parentPort, workerData } = require("node:worker_threads");
const { performance } = require("node:perf_hooks");
const { url, headers, body, timeoutMs } = workerData;
async function once() {
  const started = performance.now();
  try {
    const answer = await fetch(url, { method: "POST", headers: { ...headers, "content-type": "application/json" }, body, signal: AbortSignal.timeout(timeoutMs) });
    await answer.arrayBuffer();
    if (!answer.ok) return parentPort.postMessage({ ms: performance.now() - started, error: "status " + answer.status, status: answer.status });
    parentPort.postMessage({ ms: performance.now() - started });
  } catch (error) {
    parentPort.postMessage({ ms: performance.now() - started, error: String((error && error.message) || error) });
  }
}
const pause = (ms) => new Promise((r) => setTimeout(r, ms));
parentPort.on("message", async ({ count, spacedMs, everyMs }) => {
  for (let i = 0; i < count; i++) {
    if (i > 0 && spacedMs) await pause(spacedMs);
    await once();
  }
  if (everyMs) for (;;) { await pause(everyMs); await once(); }
});
`;

/**
 * Times a probe query on a thread of its own, so the latency it reports is the server's and the network's, not the
 * time this thread's event loop was busy encoding a page (a backup keeps it busy: measured here, its own work would
 * read as slow queries and throttle it for nothing).
 */
export class LatencyProbe {
  private readonly worker: Worker;
  private listener: ((message: ProbeMessage) => void) | undefined;
  /** Why the first failed probe of a measurement failed, for the log when none succeeded. */
  firstError: string | undefined;
  /** The HTTP status of that failure, when the server answered one (a 401/403 names the credentials to fix). */
  firstStatus: number | undefined;

  constructor(request: ProbeRequest) {
    this.worker = new Worker(THREAD, { eval: true, workerData: request });
    this.worker.unref();
    this.worker.on("message", (message: ProbeMessage) => this.listener?.(message));
  }

  /** Latencies of `count` queries, each `spacedMs` after the last one answered (0: back to back; failed ones left out). */
  measure(count: number, spacedMs = 0): Promise<number[]> {
    return new Promise((resolve, reject) => {
      const latencies: number[] = [];
      let answered = 0;
      // A thread that dies or ends answers no more: without these the caller would wait for ever.
      const failed = (error: Error) => settle(() => reject(error));
      const ended = (code: number) => settle(() => reject(new Error(`the latency probe thread ended (exit code ${code})`)));
      const settle = (finish: () => void) => {
        this.worker.off("error", failed);
        this.worker.off("exit", ended);
        this.listener = undefined;
        finish();
      };
      this.worker.once("error", failed);
      this.worker.once("exit", ended);
      this.listener = (message) => {
        if (message.error === undefined) latencies.push(message.ms);
        else if (this.firstError === undefined) {
          this.firstError = message.error;
          this.firstStatus = message.status;
        }
        if (++answered < count) return;
        settle(() => resolve(latencies));
      };
      this.worker.postMessage({ count, spacedMs });
    });
  }

  /** From now on, one query every `everyMs` after the last one answered, each reported to `report`. */
  watch(everyMs: number, report: (message: ProbeMessage) => void): void {
    this.listener = report;
    this.worker.postMessage({ count: 0, everyMs });
  }

  close(): Promise<number> {
    this.listener = undefined;
    return this.worker.terminate();
  }
}
