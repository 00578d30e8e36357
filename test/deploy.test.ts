import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { loadSchedule } from "../src/scheduling/schedule-file.js";
import { runCli } from "./helpers/cli.js";
import { testEnv, uniqueName } from "./helpers/services.js";
import { tempDir, tempFile } from "./helpers/temp-dir.js";

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
    const noEnv = tempFile("compose", "empty.env");
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
    const env = tempFile("compose", "test.env");
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

/**
 * deploy/minio-credentials.sh against a directory of the test's own, with the system's sh (dash here) and as the init
 * service runs it: busybox sh with nothing but busybox applets on PATH (the Redis alpine image).
 */
const SCRIPT = `${ROOT}deploy/minio-credentials.sh`;
const files = (dir: string) =>
  Object.fromEntries(readdirSync(dir).map((name) => [name, readFileSync(join(dir, name), "utf8")] as const));
/** What CREDENTIALS_OWNER is set to and the uid it must give: as root (CI), another user's, so the chown shows. */
const OWNER = process.getuid!() === 0 ? { spec: "1000:1000", uid: 1000 } : { spec: `${process.getuid!()}:${process.getgid!()}`, uid: process.getuid!() };

describe.each(["sh", "busybox sh"])("deploy/minio-credentials.sh under %s", (shell) => {
  let applets: string | undefined;
  beforeAll(() => {
    if (shell !== "busybox sh") return;
    const which = spawnSync("busybox", ["--help"], { encoding: "utf8" });
    expect(which.error, "busybox is a test dependency: apt-get install busybox (.ci/run installs it)").toBeUndefined();
    applets = tempDir("busybox");
    expect(spawnSync("busybox", ["--install", "-s", applets]).status).toBe(0);
  });
  const run = (dir: string, env: Record<string, string> = {}) => {
    const [command, ...args] = applets ? [join(applets, "sh")] : ["sh"];
    return spawnSync(command!, [...args, SCRIPT, dir], {
      env: { PATH: applets ?? process.env.PATH ?? "", CREDENTIALS_OWNER: OWNER.spec, ...env },
      encoding: "utf8",
    });
  };
  /** One line on stderr saying `fix`, nothing else, a non-zero exit. */
  const expectRefused = (result: ReturnType<typeof run>, fix: string) => {
    expect(result.status, fix).not.toBe(0);
    expect(result.stderr.trim().split("\n"), fix).toEqual([expect.stringContaining(fix)]);
  };

  it("makes random credentials once, private to their owner, and keeps them", () => {
    const dir = tempDir("creds");
    const first = run(dir);
    expect(first.stderr).toBe("");
    expect(first.status).toBe(0);
    expect(first.stdout).toBe(`minio-credentials: generated new credentials in ${dir}\n`);
    const made = files(dir);
    expect(Object.keys(made).sort()).toEqual(["aws-credentials", "root-password", "root-user"]);
    expect(made["root-user"]).toMatch(/^[A-Za-z0-9]{16}\n$/);
    expect(made["root-password"]).toMatch(/^[A-Za-z0-9]{40}\n$/);
    for (const name of Object.keys(made)) expect(statSync(join(dir, name)).mode & 0o777, name).toBe(0o600);
    expect(statSync(join(dir, "aws-credentials")).uid).toBe(OWNER.uid);

    const again = run(dir);
    expect(again.status).toBe(0);
    expect(again.stdout).toContain("keeping");
    expect(files(dir)).toEqual(made);
    // Another directory, other credentials: nothing is built in.
    const other = tempDir("creds");
    expect(run(other).status).toBe(0);
    expect(files(other)["root-password"]).not.toBe(made["root-password"]);
  });

  it("writes .env's pair over the kept one, and refuses a half or unusable pair without touching the files", () => {
    const dir = tempDir("creds");
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
      expectRefused(refused, fix);
      expect(refused.stderr).not.toContain("with a space");
      expect(files(dir)).toEqual(written);
    }
  });

  it("keeps a file without a final newline, and refuses kept files MinIO would read as empty (its default login)", () => {
    const dir = tempDir("creds");
    writeFileSync(join(dir, "root-user"), "hand-made");
    writeFileSync(join(dir, "root-password"), "edited-without-newline");
    const kept = run(dir);
    expect(kept.stderr).toBe("");
    expect(kept.status).toBe(0);
    expect(files(dir)["aws-credentials"]).toBe(
      "[default]\naws_access_key_id=hand-made\naws_secret_access_key=edited-without-newline\n",
    );

    for (const [user, password, fix] of [
      ["\n", "a-password\n", "MINIO_ROOT_USER (root-user) must be at least 3 characters"],
      ["ops\n", "\n", "MINIO_ROOT_PASSWORD (root-password) must be at least 8 characters"],
      ["ops\n", "    \t    \t\n", "MINIO_ROOT_PASSWORD (root-password) must not contain spaces"],
      ["ops\r\n", "a-password\n", "MINIO_ROOT_USER (root-user) must not contain spaces or control characters"],
    ] as const) {
      writeFileSync(join(dir, "root-user"), user);
      writeFileSync(join(dir, "root-password"), password);
      const before = files(dir);
      const refused = run(dir);
      expectRefused(refused, fix);
      expect(refused.stderr).toContain("set MINIO_ROOT_USER and MINIO_ROOT_PASSWORD in .env, or delete the volume");
      expect(files(dir)).toEqual(before);
    }
  });

  it("owns aws-credentials as CREDENTIALS_OWNER, and refuses an owner it cannot give in one line, the old file kept", () => {
    const dir = tempDir("creds");
    expect(run(dir).status).toBe(0);
    const before = files(dir);
    const refused = run(dir, { CREDENTIALS_OWNER: "nosuchuser-vk" });
    expectRefused(refused, "cannot chown aws-credentials to nosuchuser-vk");
    expect(refused.stderr).toContain("fix CREDENTIALS_OWNER in docker-compose.yaml");
    expect(refused.stdout).toBe("");
    expect(files(dir)).toEqual(before);
    expect(statSync(join(dir, "aws-credentials")).uid).toBe(OWNER.uid);
  });
});

/** The commands of the minio and createbucket services, run by sh with stand-ins for `minio` and `mc`. */
describe("the compose services that read the credentials", () => {
  const services = (parse(readFileSync(`${ROOT}docker-compose.yaml`, "utf8"), { merge: true }) as {
    services: Record<string, { entrypoint: string[]; command: string[] }>;
  }).services;
  /**
   * Runs a service's `sh -c` command as compose would ($$ is a literal $), with a /credentials of its own holding the
   * files given (user, password; undefined: no file).
   */
  const runService = (name: string, user: string | undefined, password: string | undefined) => {
    const dir = tempDir("creds");
    if (user !== undefined) writeFileSync(join(dir, "root-user"), user);
    if (password !== undefined) writeFileSync(join(dir, "root-password"), password);
    const { entrypoint, command } = services[name]!;
    expect(entrypoint).toEqual(["/bin/sh", "-c"]);
    expect(command).toHaveLength(1);
    // No variable compose itself would fill in: every $ is written $$.
    expect(command[0]!.replaceAll("$$", "")).not.toContain("$");
    const script = command[0]!.replaceAll("$$", "$").replaceAll("/credentials/", `${dir}/`);
    const bin = tempDir("stubs");
    // Stand-ins that record their arguments and stdin.
    for (const tool of ["mc", "minio"]) {
      writeFileSync(join(bin, tool), `#!/bin/sh\nprintf '%s|' "$@" >>"${bin}/${tool}.args"\necho >>"${bin}/${tool}.args"\ncat >>"${bin}/${tool}.stdin"\n`, {
        mode: 0o755,
      });
    }
    const result = spawnSync("sh", ["-c", script], { env: { PATH: `${bin}:${process.env.PATH ?? ""}` }, encoding: "utf8", input: "" });
    const read = (file: string) => (existsSync(join(bin, file)) ? readFileSync(join(bin, file), "utf8") : "");
    return { ...result, args: { mc: read("mc.args"), minio: read("minio.args") }, stdin: { mc: read("mc.stdin") } };
  };

  it("give mc the root keys on stdin, never as arguments (which ps shows to everyone on the host)", () => {
    const result = runService("createbucket", "vk-user-1\n", "secret-password-no-newline");
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    expect(result.args.mc).toBe("alias|set|vk|http://minio:9000|\nmb|--ignore-existing|vk/vectorkeeper|\n");
    expect(result.stdin.mc).toBe("vk-user-1\nsecret-password-no-newline\n");
  });

  it("start MinIO only with a first line in each file: never with its default login", () => {
    for (const [user, password] of [
      [undefined, undefined],
      ["ops\n", undefined],
      ["\n", "a-password\n"],
      ["ops\n", "   \n"],
    ] as const) {
      const refused = runService("minio", user, password);
      expect(refused.status, JSON.stringify([user, password])).toBe(1);
      expect(refused.stderr.trim().split("\n")).toEqual(["no credentials in /credentials: the minio-credentials service makes them"]);
      expect(refused.args.minio).toBe("");
    }
    const started = runService("minio", "ops", "a-password");
    expect(started.stderr).toBe("");
    expect(started.status).toBe(0);
    expect(started.args.minio).toBe("server|/data|--console-address|:9001|\n");
  });
});

describe("the credentials file minio-credentials writes", () => {
  const run = (dir: string, env: Record<string, string> = {}) =>
    spawnSync("sh", [SCRIPT, dir], { env: { PATH: process.env.PATH ?? "", ...env }, encoding: "utf8" });

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
    const known = tempDir("creds");
    expect(run(known, { MINIO_ROOT_USER: "S3RVER", MINIO_ROOT_PASSWORD: "#S3RVER;=x" }).status).toBe(0);
    const listed = await runCli(["backups", "list", "--json"], bucketEnv(join(known, "aws-credentials")));
    expect(listed.stderr).toBe("");
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.stdout)).toMatchObject({ backups: [] });

    // Generated credentials are not S3RVER's: the refusal shows the file's key is the one sent.
    const generated = tempDir("creds");
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
