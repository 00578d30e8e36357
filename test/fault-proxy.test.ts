import http from "node:http";
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHttpFaultProxy, startTcpFaultProxy } from "./helpers/fault-proxy.js";

// The harness other crash tests build on: each fault is checked against a real HTTP server here once.
const BODY = "x".repeat(64 * 1024);
let origin: http.Server;
let originUrl: string;

beforeAll(async () => {
  origin = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => res.writeHead(200, { "content-length": BODY.length }).end(BODY));
  });
  await new Promise<void>((resolve) => origin.listen(0, "127.0.0.1", resolve));
  const address = origin.address();
  originUrl = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
});
afterAll(() => new Promise<void>((resolve) => origin.close(() => resolve())));

/** GET over a fresh connection; resolves with status and body, or the error's code/message. */
function get(url: string, timeoutMs = 5000): Promise<{ status?: number; body?: string; error?: string }> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      let body = "";
      res.on("data", (chunk: Buffer) => (body += chunk.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message }));
      res.on("aborted", () => resolve({ error: "aborted" }));
    });
    req.on("timeout", () => req.destroy(new Error("client timeout")));
    req.on("error", (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message }));
  });
}

describe("HTTP fault proxy", () => {
  it("passes through, answers an injected status, truncates, resets and stalls, each only as often as told", async () => {
    const proxy = await startHttpFaultProxy(originUrl);
    try {
      expect(await get(`${proxy.url}/a`)).toEqual({ status: 200, body: BODY });

      proxy.inject({ method: "GET", path: /^\/five/, skip: 1, times: 1, fault: { kind: "status", status: 503 } });
      expect((await get(`${proxy.url}/five`)).status).toBe(200);
      expect((await get(`${proxy.url}/five`)).status).toBe(503);
      expect((await get(`${proxy.url}/five`)).status).toBe(200);

      proxy.inject({ path: /^\/trunc/, times: 1, fault: { kind: "truncate", afterBytes: 1000 } });
      const truncated = await get(`${proxy.url}/trunc`);
      expect(truncated.body?.length ?? 0).toBeLessThan(BODY.length);
      expect(truncated.error ?? "short").toBeTruthy();

      proxy.inject({ path: /^\/reset/, times: 1, fault: { kind: "reset", afterBytes: 1000 } });
      expect((await get(`${proxy.url}/reset`)).error).toMatch(/ECONNRESET|aborted/);

      proxy.inject({ path: /^\/stall/, times: 1, fault: { kind: "stall" } });
      expect((await get(`${proxy.url}/stall`, 500)).error).toBe("client timeout");

      expect(proxy.requests.filter((r) => r.fault).map((r) => r.fault)).toEqual(["status", "truncate", "reset", "stall"]);
    } finally {
      await proxy.close();
    }
  });
});

describe("TCP fault proxy", () => {
  it("cuts open connections, refuses while down, blackholes, and comes back on the same port", async () => {
    const origin = new URL(originUrl);
    const proxy = await startTcpFaultProxy({ host: origin.hostname, port: Number(origin.port) });
    const url = `http://${proxy.url}/`;
    try {
      expect((await get(url)).status).toBe(200);

      const open = connect(proxy.port, "127.0.0.1");
      await new Promise((resolve) => open.once("connect", resolve));
      const closed = new Promise((resolve) => open.once("close", resolve));
      proxy.cut();
      await closed;

      await proxy.down();
      expect((await get(url)).error).toBe("ECONNREFUSED");
      await proxy.up();
      expect((await get(url)).status).toBe(200);

      proxy.blackhole();
      expect((await get(url, 500)).error).toBe("client timeout");
      await proxy.up();
      expect((await get(url)).status).toBe(200);
    } finally {
      await proxy.close();
    }
  });
});
