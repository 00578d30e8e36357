import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { QueueEvents } from "bullmq";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorker, type WorkerHandle } from "../worker.js";
import { SERVED_KINDS } from "../src/queues/catalogue.js";
import { createRedisConnection } from "../src/queues/connection.js";
import { enqueue } from "../src/queues/enqueue.js";
import { startHttpFaultProxy, type HttpFaultProxy } from "./helpers/fault-proxy.js";
import { eventually } from "./helpers/metrics-text.js";
import { chromaStore, chromaUrl, quietLogger, seedCollection, testConfig, uniqueName } from "./helpers/services.js";

/** Debian's chromium, which .ci/run installs; playwright's own browser download cannot run here. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
/** Where the pages are kept for a person to look at after a run: in the checkout's ignored .cache, not in /tmp. */
const screenshot = (name: string) => fileURLToPath(new URL(`../.cache/screenshots/${name}.png`, import.meta.url));

describe("dashboard in a real browser", () => {
  const collection = uniqueName("dash_probe");
  const config = testConfig({ DASHBOARD_USER: "ops", DASHBOARD_PASSWORD: "browser-pass" });
  let worker: WorkerHandle;
  let browser: Browser;
  let jobId: string;
  // The worker reads Chroma through a proxy, so a test can hold a backup mid-way (a job that stays active).
  let proxy: HttpFaultProxy;

  beforeAll(async () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium (the CI script does)`).toBe(true);
    await seedCollection(chromaStore(), collection, 5, 8);
    proxy = await startHttpFaultProxy(chromaUrl());
    worker = await startWorker({ config, logger: quietLogger(), chroma: chromaStore(proxy.url) });
    const connection = createRedisConnection(config.redisUrl, "worker");
    const events = new QueueEvents("probe", { connection, prefix: config.queuePrefix });
    await events.waitUntilReady();
    const job = await enqueue(worker.queues, "probe", { collection });
    await job.waitUntilFinished(events, 20_000);
    jobId = job.id!;
    await events.close();
    connection.disconnect();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
  });
  afterAll(async () => {
    await browser?.close();
    await proxy?.close();
    await worker?.close();
  });

  /** A logged-in page that records every request the browser makes. */
  async function loggedIn() {
    const context = await browser.newContext({ httpCredentials: { username: "ops", password: "browser-pass" } });
    const page = await context.newPage();
    const requested: string[] = [];
    page.on("request", (request) => requested.push(request.url()));
    return { context, page, requested };
  }

  it("refuses the dashboard without credentials", async () => {
    const page = await browser.newPage();
    // Headless Chromium has no login prompt: a 401 with a basic-auth challenge ends the navigation.
    await expect(page.goto(`${worker.ops.url}/dashboard`)).rejects.toThrow(/ERR_INVALID_AUTH_CREDENTIALS/);
    const response = await page.request.get(`${worker.ops.url}/dashboard`);
    expect(response.status()).toBe(401);
    expect(response.headers()["www-authenticate"]).toContain("Basic");
    await page.close();
  });

  it("after login shows every queue and the completed probe job", async () => {
    const context = await browser.newContext({ httpCredentials: { username: "ops", password: "browser-pass" } });
    const page = await context.newPage();
    const response = await page.goto(`${worker.ops.url}/dashboard`);
    expect(response?.status()).toBe(200);
    for (const kind of SERVED_KINDS) {
      await expect(page.getByText(kind, { exact: true }).first().waitFor({ timeout: 15_000 })).resolves.toBeUndefined();
    }
    await page.goto(`${worker.ops.url}/dashboard/queue/probe?status=completed`);
    await page.getByText(`#${jobId}`).first().waitFor({ timeout: 15_000 });
    await expect(page.getByText(collection).first().isVisible()).resolves.toBe(true);
    await page.screenshot({ path: screenshot("dashboard") });
    await context.close();
  });

  it("loads nothing from outside the ops server (no web fonts)", async () => {
    const { context, page, requested } = await loggedIn();
    await page.goto(`${worker.ops.url}/dashboard/queue/probe?status=completed`);
    await page.getByText(`#${jobId}`).first().waitFor({ timeout: 15_000 });
    await page.waitForLoadState("networkidle");
    expect(requested.length).toBeGreaterThan(3);
    expect(requested.filter((url) => !url.startsWith(`${worker.ops.url}/`) && !url.startsWith("data:"))).toEqual([]);
    await context.close();
  });

  it("shows a failed job's one-line reason and no stack trace", async () => {
    const missing = uniqueName("dash_gone");
    const connection = createRedisConnection(config.redisUrl, "worker");
    const events = new QueueEvents("probe", { connection, prefix: config.queuePrefix });
    await events.waitUntilReady();
    const job = await enqueue(worker.queues, "probe", { collection: missing });
    await expect(job.waitUntilFinished(events, 20_000)).rejects.toThrow(/does not exist/);
    await events.close();
    connection.disconnect();

    const { context, page } = await loggedIn();
    await page.goto(`${worker.ops.url}/dashboard/queue/probe?status=failed`);
    await page.getByText(`#${job.id}`).first().waitFor({ timeout: 15_000 });
    await page.getByText(`collection "${missing}" does not exist`).first().waitFor({ timeout: 15_000 });
    const text = await page.locator("body").innerText();
    expect(text).not.toMatch(/\n\s*at \S+ \(|node:internal|\.ts:\d+:\d+/);
    await page.screenshot({ path: screenshot("dashboard-failed") });
    await context.close();
  });

  it("draws a running job's progress as a bar", async () => {
    const big = uniqueName("dash_backup");
    await seedCollection(chromaStore(), big, 60, 8);
    // Pages of 5; the id listing and the first record pages pass, every read after them never returns: the job
    // reports progress and then stays active however slow the machine is.
    proxy.inject({ method: "POST", path: /\/get$/, skip: 3, fault: { kind: "stall" } });
    const job = await enqueue(worker.queues, "backup", { collection: big, pageSize: 5, readAhead: 0 });
    const progress = await eventually(
      async () => (await worker.queues.get("backup").getJob(job.id!))?.progress,
      (p) => typeof p === "object" && p !== null && "done" in p && (p as { done: number }).done > 0,
      30_000,
    );
    expect(progress).toMatchObject({ progress: expect.any(Number), total: 60, unit: "records" });

    const { context, page } = await loggedIn();
    await page.goto(`${worker.ops.url}/dashboard/queue/backup?status=active`);
    const bar = page.getByRole("progressbar").first();
    await bar.waitFor({ timeout: 15_000 });
    const now = Number(await bar.getAttribute("aria-valuenow"));
    expect(now).toBeGreaterThan(0);
    expect(now).toBeLessThan(100);
    await page.screenshot({ path: screenshot("dashboard-progress") });
    await context.close();
  });
});
