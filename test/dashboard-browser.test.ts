import { existsSync } from "node:fs";
import { QueueEvents } from "bullmq";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorker, type WorkerHandle } from "../worker.js";
import { SERVED_KINDS } from "../src/queues/catalogue.js";
import { createRedisConnection } from "../src/queues/connection.js";
import { enqueue } from "../src/queues/enqueue.js";
import { chromaStore, quietLogger, seedCollection, testConfig, uniqueName } from "./helpers/services.js";

/** Debian's chromium, which .ci/run installs; playwright's own browser download cannot run here. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

describe("dashboard in a real browser", () => {
  const collection = uniqueName("dash_probe");
  const config = testConfig({ DASHBOARD_USER: "ops", DASHBOARD_PASSWORD: "browser-pass" });
  let worker: WorkerHandle;
  let browser: Browser;
  let jobId: string;

  beforeAll(async () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium (the CI script does)`).toBe(true);
    await seedCollection(chromaStore(), collection, 5, 8);
    worker = await startWorker({ config, logger: quietLogger(), chroma: chromaStore() });
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
    await worker?.close();
  });

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
    await page.screenshot({ path: "/tmp/vectorkeeper-dashboard.png" });
    await context.close();
  });
});
