import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebhookChannel, type Alert } from "../src/alerts/alert-channels.js";
import { DEFAULTS } from "../src/config/defaults.js";
import { startHttpFaultProxy, type HttpFaultProxy } from "./helpers/fault-proxy.js";
import { quietLogger } from "./helpers/services.js";
import { startWebhookReceiver } from "./helpers/webhook-receiver.js";

// Every network call has a time limit and a retry: the alert webhook too (issue 10).
let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
let proxy: HttpFaultProxy;
beforeAll(async () => {
  receiver = await startWebhookReceiver();
  proxy = await startHttpFaultProxy(new URL(receiver.url).origin);
});
afterAll(async () => {
  await proxy.close();
  await receiver.close();
});

const alert: Alert = { transition: "fire", check: "probe", subject: "products_v1", text: "probe failing", details: {}, at: new Date().toISOString() };

describe("alert webhook", () => {
  it("retries a POST that gets a 503 or stalls, and the alert arrives once", async () => {
    proxy.inject({ method: "POST", times: 1, fault: { kind: "status", status: 503 } });
    proxy.inject({ method: "POST", times: 1, fault: { kind: "stall" } });
    const url = `${proxy.url}${new URL(receiver.url).pathname}`;
    const before = receiver.received.length;
    await new WebhookChannel({ url, headers: {}, timeoutMs: 500, retryBaseMs: 50 }, quietLogger()).send(alert);
    expect(proxy.requests.map((r) => r.fault ?? "passed")).toEqual(["status", "stall", "passed"]);
    expect(receiver.received.slice(before).map((r) => r.body.text)).toEqual(["probe failing"]);
    expect(DEFAULTS.alerts.webhookAttempts).toBeGreaterThanOrEqual(2);
  });
});
