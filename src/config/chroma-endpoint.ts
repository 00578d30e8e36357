import { hasControlCharacters, redactUrl } from "../redact.js";
import { ConfigError } from "./config-error.js";

/** CHROMA_URL and CHROMA_TOKEN turned into where every request to Chroma goes and the headers it carries. */
export interface ChromaEndpoint {
  /**
   * CHROMA_URL without its user info: fetch refuses a URL that carries credentials, and node:http would turn them
   * into a header of its own. Requests are built from this; the credentials travel in `headers` only.
   */
  base: string;
  /** Sent with every request (the chromadb client's, the bulk reader's, the REST calls', the latency probe's). */
  headers: Record<string, string>;
  /** CHROMA_URL as it may be shown (messages, logs, `/readyz`): credentials stripped, their place marked. */
  where: string;
}

/**
 * One behaviour for credentials, whichever of the four paths a request takes: `user:password@` in CHROMA_URL (a
 * gateway in front of Chroma doing HTTP Basic auth) becomes `Authorization: Basic …` of the percent-decoded user and
 * password, as RFC 3986 writes them in a URL and RFC 7617 (UTF-8) sends them; CHROMA_TOKEN becomes
 * `Authorization: Bearer` and `x-chroma-token`, the two headers Chroma's token auth may be configured to read. Both at
 * once is refused: the token would lose its Authorization header, and a server that reads it there would refuse
 * every request for a reason no message names. Returns the endpoint, or what is wrong with CHROMA_URL (the env
 * schema's issue); problems name the variables, never the values.
 */
export function parseChromaEndpoint(url: string, token: string | undefined): ChromaEndpoint | { problem: string } {
  const parsed = new URL(url);
  const where = redactUrl(url);
  if (parsed.username === "" && parsed.password === "") {
    return { base: url, headers: token ? { authorization: `Bearer ${token}`, "x-chroma-token": token } : {}, where };
  }
  if (token) {
    return {
      problem:
        "its user:password (sent as Authorization: Basic) and CHROMA_TOKEN (sent as Authorization: Bearer) cannot both be set; keep one of them",
    };
  }
  const user = decoded(parsed.username, "user");
  if (typeof user !== "string") return user;
  const password = decoded(parsed.password, "password");
  if (typeof password !== "string") return password;
  // RFC 7617: a user-id with a colon cannot be told from the password that follows it.
  if (user.includes(":")) {
    return {
      problem:
        "its user contains a colon (%3A), which HTTP Basic auth cannot carry; use a user name without a colon (a colon may appear in the password)",
    };
  }
  parsed.username = "";
  parsed.password = "";
  const basic = Buffer.from(`${user}:${password}`, "utf8").toString("base64");
  return { base: parsed.href, headers: { authorization: `Basic ${basic}` }, where };
}

/** {@link parseChromaEndpoint} of a URL given in code (a local server, tests, benchmarks): a problem is a ConfigError. */
export function chromaEndpoint(url: string, token?: string): ChromaEndpoint {
  const endpoint = parseChromaEndpoint(url, token);
  if ("problem" in endpoint) throw new ConfigError(`CHROMA_URL: ${endpoint.problem}`);
  return endpoint;
}

function decoded(text: string, what: "user" | "password"): string | { problem: string } {
  let value: string;
  try {
    value = decodeURIComponent(text);
  } catch {
    return { problem: `its ${what} has a % that does not start a %XX escape of UTF-8; write a literal % as %25` };
  }
  if (hasControlCharacters(value)) return { problem: `its ${what} contains a control character (such as %0A); remove it` };
  return value;
}
