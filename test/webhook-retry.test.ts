import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebhookChannel, type Alert } from "../src/alerts/alert-channels.js";
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
    // The time limit ends the stalled attempt; it is long enough that the passing attempt keeps it on a loaded
    // machine, and a fourth attempt is spare.
    await new WebhookChannel({ url, headers: {}, timeoutMs: 3000, attempts: 4, retryBaseMs: 50 }, quietLogger()).send(alert);
    expect(proxy.requests.map((r) => r.fault ?? "passed").slice(0, 3)).toEqual(["status", "stall", "passed"]);
    expect(receiver.received.slice(before).map((r) => r.body.text)).toEqual(["probe failing"]);
  });

  it("retries by default: a channel given no attempt count still delivers after a 503", async () => {
    proxy.clear();
    const seen = proxy.requests.length;
    proxy.inject({ method: "POST", times: 1, fault: { kind: "status", status: 503 } });
    const url = `${proxy.url}${new URL(receiver.url).pathname}`;
    const before = receiver.received.length;
    await new WebhookChannel({ url, headers: {}, timeoutMs: 3000, retryBaseMs: 50 }, quietLogger()).send({ ...alert, text: "second" });
    expect(proxy.requests.slice(seen).map((r) => r.fault ?? "passed")).toEqual(["status", "passed"]);
    expect(receiver.received.slice(before).map((r) => r.body.text)).toEqual(["second"]);
  });
});
