import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { describe, expect, inject, it } from "vitest";
import { loadSchedule } from "../src/scheduling/schedule-file.js";
import { runCli } from "./helpers/cli.js";
import { testEnv, uniqueName } from "./helpers/services.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** docker-compose.yaml and what it mounts: a schedule that does the job, pinned images, no built-in secret. */
describe("the compose deployment", () => {
  const compose = parse(readFileSync(`${ROOT}docker-compose.yaml`, "utf8"), { merge: true }) as {
    services: Record<string, { image?: string; healthcheck?: { test: string[] }; volumes?: string[] }>;
  };

  it("runs a schedule with nightly backups and retention, expiry, probes and a weekly drill", () => {
    const mount = compose.services.scheduler!.volumes!.find((v) => v.endsWith(":/app/schedule.yaml:ro"))!;
    const schedule = loadSchedule(`${ROOT}${mount.split(":")[0]!.replace(/^\.\//, "")}`, true);
    const kinds = schedule.jobs.map((entry) => entry.kind);
    expect(kinds).toEqual(expect.arrayContaining(["backup", "expire", "probe", "drill"]));
    // The shipped rules warn about a collection not drilled for 8 days: the shipped schedule drills at least weekly.
    expect(schedule.jobs.find((entry) => entry.kind === "drill")!.cron).toMatch(/^\d+ \d+ \* \* [0-6]$/);
    const backup = schedule.jobs.find((entry) => entry.kind === "backup")!;
    expect(backup.cron).toMatch(/^\d+ \d+ \* \* \*$/);
    expect(backup).toHaveProperty("keep");
  });

  it("pins every image to a version, Chroma to the tests' current server release", () => {
    const images = Object.entries(compose.services).flatMap(([, s]) => (s.image ? [s.image] : []));
    for (const image of images.filter((i) => i !== "vectorkeeper:local")) {
      expect(image, image).toMatch(/:[^:]*\d[^:]*$/);
      expect(image, image).not.toMatch(/:latest$/);
    }
    // test/local-chroma.test.ts checks that the current bindings (1.3.4) report this release.
    expect(compose.services.chroma!.image).toBe("chromadb/chroma:1.4.4");
  });

  it("health-checks each vectorkeeper daemon on /readyz and Chroma on its heartbeat", () => {
    for (const daemon of ["worker", "scheduler"]) expect(compose.services[daemon]!.healthcheck!.test.join(" ")).toContain("/readyz");
    expect(compose.services.chroma!.healthcheck!.test.join(" ")).toContain("/api/v2/heartbeat");
  });

  it("is valid as cloned, without a .env, and sets no secret of its own", () => {
    // An empty env file stands for "no .env" even where a developer has one (a fresh clone has none).
    const noEnv = join(mkdtempSync(join(tmpdir(), "vk-compose-")), "empty.env");
    writeFileSync(noEnv, "");
    const check = dockerCompose(["--env-file", noEnv, "config", "-q"]);
    expect(check.stderr).toBe("");
    expect(check.status).toBe(0);
    const resolved = resolvedServices(dockerCompose(["--env-file", noEnv, "config"]));
    const secretLike = /PASSWORD|SECRET|TOKEN|_KEY|_USER/;
    for (const [service, { environment = {} }] of Object.entries(resolved)) {
      for (const [name, value] of Object.entries(environment)) {
        if (secretLike.test(name) && !name.endsWith("_FILE")) expect(value, `${service}: ${name}`).toBe("");
      }
    }
    expect(readFileSync(`${ROOT}docker-compose.yaml`, "utf8")).not.toMatch(/minioadmin/i);
    expect(readFileSync(`${ROOT}.env.example`, "utf8")).toMatch(/^MINIO_ROOT_PASSWORD=$/m);
  });

  it("makes MinIO and vectorkeeper read the credentials minio-credentials writes, which .env's override", () => {
    const env = join(mkdtempSync(join(tmpdir(), "vk-compose-")), "test.env");
    writeFileSync(env, "MINIO_ROOT_USER=from-env\nMINIO_ROOT_PASSWORD=from-env-password\n");
    const resolved = resolvedServices(dockerCompose(["--env-file", env, "config"]));
    const init = resolved["minio-credentials"]!;
    expect(init.environment).toMatchObject({ MINIO_ROOT_USER: "from-env", MINIO_ROOT_PASSWORD: "from-env-password" });
    expect(init.volumes?.some((v) => v.startsWith("minio-credentials:/credentials"))).toBe(true);
    // The .env values reach the init service only: everyone else reads the files it writes.
    for (const [service, spec] of Object.entries(resolved)) {
      if (service !== "minio-credentials") expect(JSON.stringify(spec), service).not.toContain("from-env");
    }
    expect(resolved.minio!.environment).toEqual({
      MINIO_ROOT_USER_FILE: "/credentials/root-user",
      MINIO_ROOT_PASSWORD_FILE: "/credentials/root-password",
    });
    expect(resolved.minio!.depends_on).toMatchObject({ "minio-credentials": { condition: "service_completed_successfully" } });
    for (const daemon of ["worker", "scheduler"]) {
      expect(resolved[daemon]!.environment).toMatchObject({ AWS_SHARED_CREDENTIALS_FILE: "/credentials/aws-credentials" });
      expect(resolved[daemon]!.environment).not.toHaveProperty("AWS_ACCESS_KEY_ID");
      expect(resolved[daemon]!.volumes).toContain("minio-credentials:/credentials:ro");
      expect(resolved[daemon]!.depends_on).toMatchObject({ createbucket: { condition: "service_completed_successfully" } });
    }
    // The script the init service runs is the one tested below.
    expect(init.volumes).toContain(`${ROOT}deploy/minio-credentials.sh:/minio-credentials.sh:ro`);
  });
});

/** deploy/minio-credentials.sh, run with sh against a directory of the test's own, as the init service runs it. */
describe("deploy/minio-credentials.sh", () => {
  const SCRIPT = `${ROOT}deploy/minio-credentials.sh`;
  const owner = `${process.getuid!()}:${process.getgid!()}`;
  const run = (dir: string, env: Record<string, string> = {}) =>
    spawnSync("sh", [SCRIPT, dir], { env: { PATH: process.env.PATH ?? "", CREDENTIALS_OWNER: owner, ...env }, encoding: "utf8" });
  const files = (dir: string) =>
    Object.fromEntries(readdirSync(dir).map((name) => [name, readFileSync(join(dir, name), "utf8")] as const));

  it("makes random credentials once, private to their owner, and keeps them", () => {
    const dir = mkdtempSync(join(tmpdir(), "vk-creds-"));
    const first = run(dir);
    expect(first.stderr).toBe("");
    expect(first.status).toBe(0);
    const made = files(dir);
    expect(Object.keys(made).sort()).toEqual(["aws-credentials", "root-password", "root-user"]);
    expect(made["root-user"]).toMatch(/^[A-Za-z0-9]{16}\n$/);
    expect(made["root-password"]).toMatch(/^[A-Za-z0-9]{40}\n$/);
    for (const name of Object.keys(made)) expect(statSync(join(dir, name)).mode & 0o777, name).toBe(0o600);
    expect(statSync(join(dir, "aws-credentials")).uid).toBe(process.getuid!());

    const again = run(dir);
    expect(again.status).toBe(0);
    expect(again.stdout).toContain("keeping");
    expect(files(dir)).toEqual(made);
    // Another directory, other credentials: nothing is built in.
    const other = mkdtempSync(join(tmpdir(), "vk-creds-"));
    expect(run(other).status).toBe(0);
    expect(files(other)["root-password"]).not.toBe(made["root-password"]);
  });

  it("writes .env's pair over the kept one, and refuses a half or unusable pair without touching the files", () => {
    const dir = mkdtempSync(join(tmpdir(), "vk-creds-"));
    expect(run(dir).status).toBe(0);
    const given = run(dir, { MINIO_ROOT_USER: "ops", MINIO_ROOT_PASSWORD: "#not;a=comment" });
    expect(given.status).toBe(0);
    expect(files(dir)).toMatchObject({ "root-user": "ops\n", "root-password": "#not;a=comment\n" });
    const written = files(dir);
    for (const [env, fix] of [
      [{ MINIO_ROOT_USER: "ops" }, "set both MINIO_ROOT_USER and MINIO_ROOT_PASSWORD"],
      [{ MINIO_ROOT_USER: "ops", MINIO_ROOT_PASSWORD: "short" }, "MINIO_ROOT_PASSWORD must be at least 8 characters"],
      [{ MINIO_ROOT_USER: "ops", MINIO_ROOT_PASSWORD: "with a space" }, "MINIO_ROOT_PASSWORD must not contain spaces"],
    ] as const) {
      const refused = run(dir, env);
      expect(refused.status, fix).not.toBe(0);
      expect(refused.stderr.trim().split("\n"), fix).toEqual([expect.stringContaining(fix)]);
      expect(refused.stderr).not.toContain("with a space");
      expect(files(dir)).toEqual(written);
    }
  });

  it("writes an AWS credentials file vectorkeeper reads: S3 requests go out with its key, a missing file is one line", async () => {
    const bucketEnv = (credentials: string) =>
      testEnv({
        BACKUP_URL: `s3://vk-test/${uniqueName("compose")}`,
        S3_ENDPOINT: inject("s3Endpoint"),
        S3_FORCE_PATH_STYLE: "true",
        S3_REGION: "us-east-1",
        AWS_SHARED_CREDENTIALS_FILE: credentials,
      });
    // s3rver knows one access key, S3RVER: the pair given as .env would give it, with characters the INI format
    // treats specially in the password.
    const known = mkdtempSync(join(tmpdir(), "vk-creds-"));
    expect(run(known, { MINIO_ROOT_USER: "S3RVER", MINIO_ROOT_PASSWORD: "#S3RVER;=x" }).status).toBe(0);
    const listed = await runCli(["backups", "list", "--json"], bucketEnv(join(known, "aws-credentials")));
    expect(listed.stderr).toBe("");
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.stdout)).toMatchObject({ backups: [] });

    // Generated credentials are not S3RVER's: the refusal shows the file's key is the one sent.
    const generated = mkdtempSync(join(tmpdir(), "vk-creds-"));
    expect(run(generated).status).toBe(0);
    const refused = await runCli(["backups", "list", "--json"], bucketEnv(join(generated, "aws-credentials")));
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/S3 refused the credentials .*AWS_SHARED_CREDENTIALS_FILE/);

    const missing = await runCli(["backups", "list", "--json"], bucketEnv(join(generated, "nothing-here")));
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim().split("\n")).toEqual([expect.stringMatching(/AWS_SHARED_CREDENTIALS_FILE: names no file/)]);
  });
});

interface ResolvedService {
  environment?: Record<string, string>;
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
}

/** `docker-compose config` of this checkout, with nothing but PATH from the environment. */
function dockerCompose(args: string[]) {
  return spawnSync("docker-compose", ["-f", "docker-compose.yaml", ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "" },
    encoding: "utf8",
  });
}

function resolvedServices(result: ReturnType<typeof dockerCompose>): Record<string, ResolvedService> {
  expect(result.status, result.stderr).toBe(0);
  return (parse(result.stdout) as { services: Record<string, ResolvedService> }).services;
}
