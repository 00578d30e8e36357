import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../src/config/env.js";
import { loadSchedule, parseScheduleYaml, payloadOf } from "../src/scheduling/schedule-file.js";
import { runCli } from "./helpers/cli.js";
import { configError } from "./helpers/config-error.js";
import { tempDir } from "./helpers/temp-dir.js";

describe("environment", () => {
  it("applies the documented defaults", () => {
    const config = loadConfig({});
    expect(config.redisUrl).toBe("redis://127.0.0.1:6379");
    expect(config.queuePrefix).toBe("vk");
    expect(config.chroma).toMatchObject({ url: undefined, tenant: "default_tenant", database: "default_database" });
    expect(config.backupUrl).toBe("file://./data/backups");
    expect(config.http.port).toBe(9464);
    expect(config.dashboard).toBeUndefined();
    expect(config.worker.concurrency.probe).toBe(4);
    expect(config.scheduler.catchUpWindowMs).toBe(3_600_000);
  });

  it("names the variable, the bad value and the fix for a bad URL", () => {
    const message = configError(() => loadConfig({ REDIS_URL: "localhost:6379" }));
    expect(message).toContain("REDIS_URL");
    expect(message).toContain('"localhost:6379"');
    expect(message).toContain("redis://");
  });

  it("rejects a bad CHROMA_URL, BACKUP_URL and port in one message", () => {
    const message = configError(() =>
      loadConfig({ CHROMA_URL: "ftp://x", BACKUP_URL: "gs://bucket", HTTP_PORT: "99999", VK_LOCAL_CHROMA_PORT: "0" }),
    );
    expect(message).toMatch(/CHROMA_URL: .*http:\/\//);
    expect(message).toMatch(/BACKUP_URL: .*s3:\/\/bucket\/prefix/);
    expect(message).toMatch(/HTTP_PORT: must be at most 65535/);
    expect(message).toMatch(/VK_LOCAL_CHROMA_PORT: must be at least 1 \(the port `start` asks for its local Chroma\)/);
    expect(loadConfig({ VK_LOCAL_CHROMA_PORT: "18000" }).localChromaPort).toBe(18000);
    expect(loadConfig({}).localChromaPort).toBe(8000);
  });

  it("refuses CHROMA_URL's user:password beside CHROMA_TOKEN, and user info it cannot send, in one line without the secrets", () => {
    const secret = "Zq7s3cretPW";
    const both = configError(() => loadConfig({ CHROMA_URL: `https://ops:${secret}@gateway.example/chroma`, CHROMA_TOKEN: `tok${secret}` }));
    expect(both).toMatch(/^invalid environment: CHROMA_URL: its user:password .*and CHROMA_TOKEN .*cannot both be set; keep one of them/);
    expect(both).not.toContain(secret);
    for (const [url, problem] of [
      [`https://ops:${secret}%zz@gateway.example`, /^invalid environment: CHROMA_URL: its password has a % .*write a literal % as %25/],
      [`https://o%3Aps:${secret}@gateway.example`, /^invalid environment: CHROMA_URL: its user contains a colon .*use a user name without a colon/],
      [`https://ops:${secret}%0A@gateway.example`, /^invalid environment: CHROMA_URL: its password contains a control character/],
    ] as const) {
      const message = configError(() => loadConfig({ CHROMA_URL: url }));
      expect(message).toMatch(problem);
      expect(message).not.toContain(secret);
      expect(message.split("\n")).toHaveLength(1);
    }
    // A token beside the default URL is checked too.
    expect(loadConfig({ CHROMA_TOKEN: "t" }).chroma.endpoint).toEqual({
      base: "http://127.0.0.1:8000",
      headers: { authorization: "Bearer t", "x-chroma-token": "t" },
      where: "http://127.0.0.1:8000",
    });
  });

  it("parses CHROMA_URL and CHROMA_TOKEN once, into the endpoint every request to Chroma is built from", () => {
    const secret = "Zq7s3cretPW";
    expect(loadConfig({ CHROMA_URL: `https://ops:${secret}@gateway.example/chroma` }).chroma).toMatchObject({
      url: `https://ops:${secret}@gateway.example/chroma`,
      endpoint: {
        base: "https://gateway.example/chroma",
        headers: { authorization: `Basic ${Buffer.from(`ops:${secret}`).toString("base64")}` },
        where: "https://***@gateway.example/chroma",
      },
    });
    expect(loadConfig({ CHROMA_URL: "https://gateway.example/chroma", CHROMA_TOKEN: "t" }).chroma.endpoint.headers).toEqual({
      authorization: "Bearer t",
      "x-chroma-token": "t",
    });
    expect(loadConfig({}).chroma).toMatchObject({ url: undefined, endpoint: { base: "http://127.0.0.1:8000", headers: {} } });
  });

  it("reads AWS_SHARED_CREDENTIALS_FILE as the AWS SDK does, with a leading ~/ for the home directory", () => {
    // A home of the test's own (homedir() reads HOME), so nothing is written into the real one.
    const home = tempDir("home");
    writeFileSync(join(home, "credentials"), "[default]\naws_access_key_id=a\naws_secret_access_key=b\n");
    const realHome = process.env.HOME;
    process.env.HOME = home;
    try {
      expect(loadConfig({ AWS_SHARED_CREDENTIALS_FILE: "~/credentials" }).s3).toBeDefined();
      expect(configError(() => loadConfig({ AWS_SHARED_CREDENTIALS_FILE: "~/missing" }))).toMatch(
        /^invalid environment: AWS_SHARED_CREDENTIALS_FILE: names no file this process can read/,
      );
    } finally {
      process.env.HOME = realHome;
    }
  });

  it("parses per-kind concurrency and rejects unknown kinds", () => {
    expect(loadConfig({ VK_CONCURRENCY: "probe=8, backup=2" }).worker.concurrency).toMatchObject({ probe: 8, backup: 2, warm: 2 });
    expect(configError(() => loadConfig({ VK_CONCURRENCY: "prob=8" }))).toContain('"prob=8" is not KIND=N');
  });

  it("needs dashboard user and password together and never echoes the password", () => {
    expect(configError(() => loadConfig({ DASHBOARD_USER: "ops" }))).toContain("DASHBOARD_USER and DASHBOARD_PASSWORD");
    const message = configError(() => loadConfig({ DASHBOARD_PASSWORD: "hunter2" }));
    expect(message).not.toContain("hunter2");
  });
});

describe("schedule file", () => {
  const valid = `
timezone: Europe/Berlin
jobs:
  - { kind: probe, cron: "*/5 * * * *", collections: ["products_*", "support_articles_v1"] }
`;

  it("parses a valid schedule and derives payloads from entries", () => {
    const schedule = parseScheduleYaml(valid, "test.yaml");
    expect(schedule.timezone).toBe("Europe/Berlin");
    expect(schedule.jobs).toHaveLength(1);
    expect(payloadOf(schedule.jobs[0]!, "products_a")).toEqual({ collection: "products_a" });
  });

  it("names the entry and shows the expression for an invalid cron", () => {
    const message = configError(() =>
      parseScheduleYaml(`jobs:\n  - { kind: probe, cron: "*/5 * * * *", collections: ["*"] }\n  - { kind: probe, cron: "61 * * * *", collections: ["*"] }\n`, "s.yaml"),
    );
    expect(message).toContain("s.yaml");
    expect(message).toContain("jobs[1].cron");
    expect(message).toContain('"61 * * * *"');
  });

  it("names the field count for a cron with the wrong shape", () => {
    expect(configError(() => parseScheduleYaml(`jobs: [{ kind: probe, cron: "daily", collections: ["*"] }]`, "s"))).toMatch(
      /jobs\[0\]\.cron: "daily" has 1 fields; use 5/,
    );
  });

  it("rejects unknown keys at the top and in entries", () => {
    expect(configError(() => parseScheduleYaml(`timezone: UTC\njobz: []\n`, "s"))).toContain("jobz");
    const message = configError(() =>
      parseScheduleYaml(`jobs: [{ kind: probe, cron: "* * * * *", collections: ["*"], colections: ["x"] }]`, "s"),
    );
    expect(message).toContain("jobs[0]");
    expect(message).toContain("colections");
  });

  it("rejects unknown kinds, bad time zones, empty collection lists and broken YAML", () => {
    expect(configError(() => parseScheduleYaml(`jobs: [{ kind: snapshot, cron: "* * * * *", collections: ["*"] }]`, "s"))).toContain(
      "jobs[0].kind",
    );
    expect(configError(() => parseScheduleYaml(`timezone: Mars/Olympus\njobs: []`, "s"))).toContain("timezone");
    expect(configError(() => parseScheduleYaml(`jobs: [{ kind: probe, cron: "* * * * *", collections: [] }]`, "s"))).toContain(
      "jobs[0].collections",
    );
    expect(configError(() => parseScheduleYaml(`jobs: [ { kind: probe`, "s"))).toContain("not valid YAML");
  });

  it("uses the built-in default only when no file was named", () => {
    expect(loadSchedule("/nonexistent/schedule.yaml", false).source).toBe("built-in default");
    expect(configError(() => loadSchedule("/nonexistent/schedule.yaml", true))).toContain("SCHEDULE_FILE");
  });
});

describe("bad input at the command line", () => {
  it("exits 2 with one line naming the schedule entry, no stack trace", async () => {
    const dir = tempDir("sched");
    const file = join(dir, "schedule.yaml");
    writeFileSync(file, `jobs:\n  - { kind: probe, cron: "0 25 * * *", collections: ["*"] }\n`);
    const result = await runCli(["schedule"], { SCHEDULE_FILE: file });
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    const lines = result.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("jobs[0].cron");
    expect(lines[0]).toContain('"0 25 * * *"');
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it("exits 2 for a bad environment variable", async () => {
    const result = await runCli(["status", "--json"], { REDIS_URL: "nope" });
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split("\n")).toHaveLength(1);
    expect(JSON.parse(result.stdout)).toEqual({ error: expect.stringContaining("REDIS_URL") });
  });

  it("prints the schedule with next run times as one JSON object", async () => {
    const dir = tempDir("sched");
    const file = join(dir, "schedule.yaml");
    writeFileSync(file, `timezone: UTC\njobs:\n  - { kind: probe, cron: "0 3 * * *", collections: ["a_*"] }\n`);
    const result = await runCli(["schedule", "--json", "--count", "2"], { SCHEDULE_FILE: file });
    expect(result.code).toBe(0);
    const printed = JSON.parse(result.stdout) as { jobs: { nextRuns: string[] }[] };
    expect(printed.jobs[0]!.nextRuns).toHaveLength(2);
    for (const run of printed.jobs[0]!.nextRuns) expect(run).toMatch(/T03:00:00\.000Z$/);
  });
});

describe("shipped files", () => {
  it("examples/schedule.yaml is a valid schedule", () => {
    const schedule = loadSchedule(new URL("../examples/schedule.yaml", import.meta.url).pathname, true);
    expect(schedule.jobs.length).toBeGreaterThan(0);
  });
});
