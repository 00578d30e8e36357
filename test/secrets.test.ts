import { openSync, closeSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { describe, expect, inject, it } from "vitest";
import { loadConfig } from "../src/config/env.js";
import { createLogger } from "../src/logging.js";
import { sameSecret } from "../src/ops/ops-server.js";
import { redactUrl, redactUrlsIn } from "../src/redact.js";
import { collect, runCli, spawnCli } from "./helpers/cli.js";
import { configError } from "./helpers/config-error.js";
import { testEnv, uniqueName } from "./helpers/services.js";
import { tempFile } from "./helpers/temp-dir.js";

/** Every secret below contains this, so one assertion per output covers them all. */
const SECRET = "Zq7s3cretPW";

/** A TCP port nothing listens on (taken and released at once). */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe("the redaction helper", () => {
  it("strips userinfo and credential parameters and leaves everything else as written", () => {
    expect(redactUrl(`http://admin:${SECRET}@chroma.internal:8000`)).toBe("http://***@chroma.internal:8000/");
    expect(redactUrl(`https://${SECRET}@chroma.internal`)).toBe("https://***@chroma.internal/");
    expect(redactUrl(`rediss://:${SECRET}@redis:6380/2`)).toBe("rediss://***@redis:6380/2");
    expect(redactUrl(`https://hooks.example/x?token=${SECRET}&channel=ops`)).toBe("https://hooks.example/x?token=***&channel=ops");
    expect(redactUrl(`https://s3.example/b/k?X-Amz-Signature=${SECRET}`)).not.toContain(SECRET);
    expect(redactUrl("http://127.0.0.1:8000")).toBe("http://127.0.0.1:8000");
    expect(redactUrl("file://./data/backups")).toBe("file://./data/backups");
    // Not parseable, still redacted.
    expect(redactUrl(`http://:${SECRET}@`)).toBe("http://***@");
    expect(redactUrl(`localhost:${SECRET}@x`)).toBe("***@x");
    expect(redactUrl(`http://u:p@${SECRET}@`)).toBe("http://***@");
    expect(redactUrl(`http://u:p@${SECRET}@host/x`)).toBe("http://***@host/x");
  });

  it("finds URLs inside text and keeps the sentence around them", () => {
    expect(redactUrlsIn(`connect to redis://u:${SECRET}@r:6379. Then "http://a:${SECRET}@b/c", fine`)).toBe(
      'connect to redis://***@r:6379. Then "http://***@b/c", fine',
    );
  });

  it("finds Authorization credentials inside text, and a string that is one", () => {
    const basic = Buffer.from(`ops:${SECRET}`).toString("base64");
    expect(redactUrlsIn(`sent Authorization: Basic ${basic}, got 401`)).toBe("sent Authorization: Basic ***, got 401");
    expect(redactUrlsIn(`{"authorization":"Bearer ${SECRET}"}`)).toBe('{"authorization":"Bearer ***"}');
    expect(redactUrlsIn(`Basic ${basic}`)).toBe("Basic ***");
    // Words that merely follow "Basic" stay.
    expect(redactUrlsIn("HTTP Basic auth cannot carry a colon")).toBe("HTTP Basic auth cannot carry a colon");
    expect(redactUrlsIn("Basic auth required")).toBe("Basic auth required");
  });

  it("redacts a CHROMA_TOKEN of any printable characters, in any case, as a header value or in text", () => {
    // A whole string that is a header value, in upper or lower case, with any characters, spaces too.
    for (const [value, shown] of [
      [`Bearer sk:${SECRET}!def`, "Bearer ***"],
      [`bearer ${SECRET}`, "bearer ***"],
      [`BASIC ${SECRET}==`, "BASIC ***"],
      [`Bearer a ${SECRET} b`, "Bearer ***"],
    ] as const) {
      expect(redactUrlsIn(value)).toBe(shown);
    }
    // In text: the token whole, with `,` `;` `:` `!` in it, and a quoted one with spaces and an escaped quote.
    expect(redactUrlsIn(`Authorization: Bearer tok,${SECRET};x!y:z failed`)).toBe("Authorization: Bearer *** failed");
    expect(redactUrlsIn(`AUTHORIZATION=bearer ${SECRET}.`)).toBe("AUTHORIZATION=bearer ***.");
    expect(redactUrlsIn(`{"authorization":"Bearer a ${SECRET} \\"q\\" b","x":1}`)).toBe('{"authorization":"Bearer ***","x":1}');
    // x-chroma-token, the header CHROMA_TOKEN also travels in, as headers, JSON and util.inspect print it.
    expect(redactUrlsIn(`x-chroma-token: ${SECRET},more`)).toBe("x-chroma-token: ***");
    expect(redactUrlsIn(`{"X-Chroma-Token":"${SECRET} with space"}`)).toBe('{"X-Chroma-Token":"***"}');
    expect(redactUrlsIn(`headers: { authorization: 'Basic ${SECRET}', 'x-chroma-token': '${SECRET}' }`)).toBe(
      "headers: { authorization: 'Basic ***', 'x-chroma-token': '***' }",
    );
    // A message cut off inside the quotes.
    expect(redactUrlsIn(`authorization: "Bearer ${SECRET} and the rest`)).toBe('authorization: "Bearer ***');
    // Mentions of the header without a value stay.
    expect(redactUrlsIn("the authorization header is missing")).toBe("the authorization header is missing");
  });
});

describe("secrets in configuration errors", () => {
  const message = (env: Record<string, string>): string => configError(() => loadConfig(env));

  it("shows an invalid URL without its password, parseable or not", () => {
    for (const env of <Record<string, string>[]>[
      { REDIS_URL: `http://:${SECRET}@x` },
      { CHROMA_URL: `ftp://user:${SECRET}@x` },
      { CHROMA_URL: `http://:${SECRET}@` },
      { S3_ENDPOINT: `s3://key:${SECRET}@minio` },
      { VK_QUEUE_PREFIX: `http://u:${SECRET}${"p".repeat(150)}@x` },
    ]) {
      const text = message(env);
      expect(text).toContain(Object.keys(env)[0]!);
      expect(text).toContain("***@");
      expect(text).not.toContain(SECRET);
    }
  });

  it("refuses a CHROMA_TOKEN with a control character at config time, in one line that does not print it", async () => {
    const text = message({ CHROMA_TOKEN: `abc${SECRET}\n` });
    expect(text).toMatch(/CHROMA_TOKEN: .*newline/);
    expect(text).not.toContain(SECRET);

    const run = await runCli(["run", "backup", "--collection", "tokentest", "--json"], testEnv({ CHROMA_TOKEN: `abc\n${SECRET}` }));
    expect(run.code).toBe(2);
    expect(run.stderr.trim().split("\n")).toHaveLength(1);
    expect(run.stderr).toContain("CHROMA_TOKEN");
    expect(run.stderr + run.stdout).not.toContain(SECRET);
  });
});

describe("secrets in what commands and daemons print", () => {
  it("keeps a CHROMA_URL password out of CLI errors and --json", async () => {
    const port = await deadPort();
    const run = await runCli(
      ["run", "backup", "--collection", uniqueName("secret"), "--json"],
      testEnv({ CHROMA_URL: `http://vkuser:${SECRET}@127.0.0.1:${port}` }),
    );
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`Chroma does not answer at http://***@127.0.0.1:${port}`);
    expect(JSON.parse(run.stdout)).toMatchObject({ error: expect.stringContaining("***@127.0.0.1") });
    expect(run.stdout + run.stderr).not.toContain(SECRET);
  });

  it("keeps an S3_ENDPOINT password out of --json output", async () => {
    const endpoint = new URL(inject("s3Endpoint"));
    endpoint.username = "ak";
    endpoint.password = SECRET;
    const run = await runCli(
      ["backups", "list", "--json"],
      testEnv({
        BACKUP_URL: `s3://vk-test/${uniqueName("secrets")}`,
        S3_ENDPOINT: endpoint.toString(),
        S3_FORCE_PATH_STYLE: "true",
        S3_REGION: "us-east-1",
        AWS_ACCESS_KEY_ID: "S3RVER",
        AWS_SECRET_ACCESS_KEY: "S3RVER",
      }),
    );
    expect(run.stdout).toMatch(/"(store|error)":"[^"]*\*\*\*@127\.0\.0\.1/);
    expect(run.stdout + run.stderr).not.toContain(SECRET);
  });

  it("keeps a CHROMA_URL password out of the worker's log and the unauthenticated /readyz body", async () => {
    const port = await deadPort();
    const child = spawnCli(["worker", "--json"], testEnv({ CHROMA_URL: `http://vkuser:${SECRET}@127.0.0.1:${port}`, LOG_LEVEL: "info" }));
    const output = collect(child);
    let stdout = "";
    const started = new Promise<{ ops: string }>((resolve) => {
      child.stdout?.on("data", (d: Buffer) => {
        stdout += d.toString();
        if (stdout.includes("\n")) resolve(JSON.parse(stdout.split("\n")[0]!) as { ops: string });
      });
    });
    const { ops } = await started;
    const readyz = await fetch(`${ops}/readyz`);
    const body = await readyz.text();
    child.kill("SIGTERM");
    const result = await output;

    expect(readyz.status).toBe(503);
    expect(body).toContain(`Chroma at http://***@127.0.0.1:${port}`);
    expect(body).not.toContain(SECRET);
    const started_ = result.stderr.split("\n").find((line) => line.includes('"worker started"'));
    expect(started_).toContain(`"chroma":"http://***@127.0.0.1:${port}`);
    expect(result.stdout + result.stderr).not.toContain(SECRET);
  });

  it("redacts URLs in known fields, messages and serialized errors of every log line", () => {
    const file = tempFile("log", "log.ndjson");
    const fd = openSync(file, "w");
    const logger = createLogger("info", fd);
    logger.info({ url: `http://u:${SECRET}@h:1`, redis: `redis://:${SECRET}@r:6379` }, "with fields");
    logger.info(`message naming https://${SECRET}@host/path`);
    logger.error({ err: new Error(`connect to redis://:${SECRET}@r:6379 failed`) }, "with an error");
    logger.warn({ nested: { reason: `GET http://a:${SECRET}@b/c?token=${SECRET} failed` } }, "nested");
    logger.info({ chroma: { token: SECRET }, password: SECRET }, "secret fields");
    // The Basic header made of CHROMA_URL's user:password, deeper than the key-based paths reach.
    const basic = Buffer.from(`ops:${SECRET}`).toString("base64");
    logger.info({ job: { request: { headers: { authorization: `Basic ${basic}` } } } }, "a header deep down");
    // Deeper than any fixed limit, under header names of any case, in a value of no recognisable shape, in a cycle.
    const deep: Record<string, unknown> = { a: { b: { c: { d: { e: { f: { authorization: `Basic ${basic}` } } } } } } };
    const headers = { "X-Chroma-Token": `tok ${SECRET}`, Authorization: `${SECRET}`, other: "kept" };
    const cyclic: Record<string, unknown> = { headers };
    cyclic.self = cyclic;
    logger.info({ deep, list: [[[[[[{ headers }]]]]]], cyclic }, "deep and cyclic");
    closeSync(fd);
    const lines = readFileSync(file, "utf8").trim().split("\n");
    expect(lines).toHaveLength(7);
    expect(JSON.parse(lines[6]!)).toMatchObject({
      cyclic: { headers: { "X-Chroma-Token": "[redacted]", Authorization: "[redacted]", other: "kept" }, self: "[Circular]" },
      list: [[[[[[{ headers: { other: "kept" } }]]]]]],
    });
    expect(lines.join("\n")).not.toContain(basic);
    for (const line of lines) JSON.parse(line);
    expect(lines.join("\n")).not.toContain(SECRET);
    expect(JSON.parse(lines[0]!)).toMatchObject({ url: "http://***@h:1/", redis: "redis://***@r:6379" });
    expect(JSON.parse(lines[2]!).err.message).toBe("connect to redis://***@r:6379 failed");
  });
});

describe("the dashboard credential check", () => {
  it("compares digests, so guesses of any length are checked the same way", () => {
    expect(sameSecret("hunter2", "hunter2")).toBe(true);
    expect(sameSecret("hunter3", "hunter2")).toBe(false);
    // The old check returned before comparing when lengths differed; digests always have the same length.
    expect(sameSecret("h", "hunter2")).toBe(false);
    expect(sameSecret("", "hunter2")).toBe(false);
    expect(sameSecret("hunter2".repeat(1000), "hunter2")).toBe(false);
  });
});
