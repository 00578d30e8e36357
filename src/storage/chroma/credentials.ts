import { ConfigError } from "../../config/config-error.js";
import { hasControlCharacters } from "../../redact.js";

/** CHROMA_URL and CHROMA_TOKEN turned into where every request to Chroma goes and the headers it carries. */
export interface ChromaEndpoint {
  /**
   * CHROMA_URL without its user info: fetch refuses a URL that carries credentials, and node:http would turn them
   * into a header of its own. Requests are built from this; the credentials travel in `headers` only.
   */
  base: string;
  /** Sent with every request (the chromadb client's, the bulk reader's, the REST calls', the latency probe's). */
  headers: Record<string, string>;
}

/**
 * One behaviour for credentials, whichever of the four paths a request takes: `user:password@` in CHROMA_URL (a
 * gateway in front of Chroma doing HTTP Basic auth) becomes `Authorization: Basic …` of the percent-decoded user and
 * password, as RFC 3986 writes them in a URL and RFC 7617 (UTF-8) sends them; CHROMA_TOKEN becomes
 * `Authorization: Bearer` and `x-chroma-token`, the two headers Chroma's token auth may be configured to read. Both at
 * once is refused: the token would lose its Authorization header, and a server that reads it there would refuse
 * every request for a reason no message names. Messages name the variables, never the values.
 */
export function chromaEndpoint(url: string, token: string | undefined): ChromaEndpoint {
  const parsed = new URL(url);
  if (parsed.username === "" && parsed.password === "") {
    return { base: url, headers: token ? { authorization: `Bearer ${token}`, "x-chroma-token": token } : {} };
  }
  if (token) {
    throw new ConfigError(
      "CHROMA_URL's user:password (sent as Authorization: Basic) and CHROMA_TOKEN (sent as Authorization: Bearer) cannot both be set; keep one of them",
    );
  }
  const user = decoded(parsed.username, "user");
  const password = decoded(parsed.password, "password");
  // RFC 7617: a user-id with a colon cannot be told from the password that follows it.
  if (user.includes(":")) throw new ConfigError("CHROMA_URL's user contains a colon (%3A), which HTTP Basic auth cannot carry");
  parsed.username = "";
  parsed.password = "";
  return { base: parsed.href, headers: { authorization: `Basic ${Buffer.from(`${user}:${password}`, "utf8").toString("base64")}` } };
}

function decoded(text: string, what: "user" | "password"): string {
  let value: string;
  try {
    value = decodeURIComponent(text);
  } catch {
    throw new ConfigError(`CHROMA_URL's ${what} has a % that does not start a %XX escape of UTF-8; write a literal % as %25`);
  }
  if (hasControlCharacters(value)) throw new ConfigError(`CHROMA_URL's ${what} contains a control character (such as %0A); remove it`);
  return value;
}

/** Statuses a server (or a gateway in front of it) refuses credentials with. */
export const isRefusal = (status: number): boolean => status === 401 || status === 403;

/**
 * What a refused request says, whichever path it took: the server (its redacted URL) and the variables to fix. A
 * ConfigError: sending the same credentials again cannot succeed, so jobs do not retry it and the CLI exits 2.
 */
export const credentialsRefused = (where: string, status: number): ConfigError =>
  new ConfigError(`Chroma at ${where} refused the credentials (${status}); check the user:password in CHROMA_URL or CHROMA_TOKEN`);
