/**
 * The one place that decides what of a URL may be shown: every URL vectorkeeper prints (CLI errors, `--json`, log
 * lines, `/readyz`, config errors) goes through here, because users put credentials into CHROMA_URL, REDIS_URL,
 * S3_ENDPOINT and webhook URLs, and those outputs reach terminals, log stores and unauthenticated probes.
 */

/** Query parameters that carry credentials in URLs people paste (API tokens, presigned S3 signatures, OAuth codes). */
const SECRET_PARAM =
  /^(token|access[_-]?token|auth|auth[_-]?token|api[_-]?key|apikey|key|secret|client[_-]?secret|password|passwd|pass|pwd|sig|signature|code|x-amz-signature|x-amz-credential|x-amz-security-token|x-chroma-token)$/i;

export const REDACTED = "***";

/**
 * `http://user:pw@host/p?token=t&x=1` → `http://***@host/p?token=***&x=1`: userinfo (both halves: a user name can be
 * the secret, as in `https://TOKEN@host`) and known credential parameters replaced; the rest kept so the URL still
 * says where. Text that is not a URL has anything between `//` and the last `@` before the path replaced.
 */
export function redactUrl(url: string): string {
  const userinfoOfText = () => url.replace(/^([^@]*?\/\/)?[^/]*@/, (_, scheme: string | undefined) => `${scheme ?? ""}${REDACTED}@`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return userinfoOfText();
  }
  // `localhost:pw@x` parses as scheme "localhost:" with an opaque path: no host, and the password in plain sight.
  if (parsed.host === "" && !url.startsWith("file:")) return userinfoOfText();
  const hadUserinfo = parsed.username !== "" || parsed.password !== "";
  const secretParams = [...parsed.searchParams.keys()].filter((name) => SECRET_PARAM.test(name));
  // Nothing to hide: the text as written (URL's serializer would normalise it, e.g. add a trailing slash).
  if (!hadUserinfo && secretParams.length === 0) return url;
  parsed.username = "";
  parsed.password = "";
  for (const name of secretParams) parsed.searchParams.set(name, REDACTED);
  const shown = parsed.toString();
  return hadUserinfo ? shown.replace("//", `//${REDACTED}@`) : shown;
}

/** Anything shaped like `scheme://…` up to whitespace or a quote. */
const URL_IN_TEXT = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>`]+/gi;

/**
 * An HTTP credential written out in text: the value after `authorization` or `x-chroma-token` and `:` or `=`, as
 * headers, JSON and `util.inspect` print them (`Authorization: Basic …`, `"x-chroma-token":"…"`). A quoted value is
 * replaced up to its closing quote (or the end of the text), so a token with spaces, `,` or `;` goes whole; an
 * unquoted one up to whitespace, less a final `.`, `,`, `;` or `)` that ends the sentence around it. Basic/Bearer stay.
 * CHROMA_URL's user:password and CHROMA_TOKEN travel as these; base64 hides nothing.
 */
const CREDENTIAL_IN_TEXT =
  /\b((?:authorization|x-chroma-token)["']?\s*[:=]\s*)(?:(["'])((?:basic|bearer)\s+)?(?:\\.|(?!\2)[^\\])*(\2|$)|((?:basic|bearer)\s+)?[^\s"']*[^\s"'.,;)])/gi;

/**
 * A whole string that is an Authorization header's value (logged under any key): `Basic` and one word (a base64
 * user:password), or `Bearer` and anything (CHROMA_TOKEN may hold any printable character, spaces too).
 */
const AUTHORIZATION_VALUE = /^(?:(basic)\s+\S+|(bearer)\s+\S[\s\S]*)$/i;

/**
 * Redacts every URL inside free text (error messages from libraries, log messages, command output), and the
 * credentials of Authorization and x-chroma-token headers in it.
 */
export function redactUrlsIn(raw: string): string {
  const text = raw
    .replace(AUTHORIZATION_VALUE, (_, basic: string | undefined, bearer: string | undefined) => `${basic ?? bearer} ${REDACTED}`)
    .replace(
      CREDENTIAL_IN_TEXT,
      (_, lead: string, open?: string, quotedScheme?: string, close?: string, bareScheme?: string) =>
        `${lead}${open ?? ""}${quotedScheme ?? bareScheme ?? ""}${REDACTED}${close ?? ""}`,
    );
  if (!text.includes("://")) return text;
  return text.replace(URL_IN_TEXT, (match) => {
    // A sentence may end right after a URL: keep its punctuation out of the URL.
    const trail = /[.,;:)\]]+$/.exec(match)?.[0] ?? "";
    return redactUrl(match.slice(0, match.length - trail.length)) + trail;
  });
}

/** Control characters (newline, CR, NUL, …) cannot travel in an HTTP header and split log lines. */
export const hasControlCharacters = (text: string): boolean => /[\u0000-\u001f\u007f]/.test(text);
