import http, { type IncomingMessage, type ServerResponse } from "node:http";
import { connect, createServer, type Server, type Socket } from "node:net";

/**
 * Fault injection in front of real servers, in the spirit of toxiproxy (which Litestream's tests use): the servers are
 * the real s3rver, Chroma and Redis; only the wire between vectorkeeper and them misbehaves.
 *
 * - {@link startHttpFaultProxy}: per request, by method and path: an error status, a reset mid-body, a stall, a
 *   truncated body, or a delay; everything else passes through unchanged.
 * - {@link startTcpFaultProxy}: for any protocol (Redis): cut every open connection, go down (refuse), blackhole
 *   (accept and never answer), come back up.
 */

/** What happens to a request a rule matches. */
export type HttpFault =
  /** Answer with this status (and body) without asking the server. */
  | { kind: "status"; status: number; body?: string; contentType?: string }
  /** Forward, send the answer's headers and this many body bytes, then reset the connection (RST). */
  | { kind: "reset"; afterBytes: number }
  /** Accept the request and never answer (the connection stays open until the client gives up). */
  | { kind: "stall" }
  /** Forward, send the headers (with the full Content-Length) and this many body bytes, then close cleanly (FIN). */
  | { kind: "truncate"; afterBytes: number }
  /** Forward after this long. */
  | { kind: "delay"; ms: number };

export interface HttpFaultRule {
  method?: string;
  /** Matched against the request's path and query. */
  path?: RegExp;
  /** Matching requests let through unharmed before the fault applies. @defaultValue 0 */
  skip?: number;
  /** Matching requests the fault applies to, after `skip`. @defaultValue Infinity */
  times?: number;
  fault: HttpFault;
}

export interface SeenRequest {
  method: string;
  path: string;
  /** The fault applied, if any. */
  fault?: HttpFault["kind"];
  /** The request body's declared length (Content-Length), when it has one. */
  bytes?: number;
  /** Answered 401 for want of the right `Authorization: Basic` (see {@link HttpFaultProxyOptions.basicAuth}). */
  refused?: true;
  /** The whole request body, once received, when its path matches {@link HttpFaultProxyOptions.keepBodies}. */
  body?: Buffer;
}

export interface HttpFaultProxy {
  url: string;
  /** Every request seen, in order. */
  requests: SeenRequest[];
  /** Adds a rule; the first rule that matches and still has uses applies. Returns a function that removes it. */
  inject(rule: HttpFaultRule): () => void;
  /** Removes every rule (stalled requests stay stalled until closed). */
  clear(): void;
  close(): Promise<void>;
}

interface ActiveRule extends HttpFaultRule {
  seen: number;
  applied: number;
}

export interface HttpFaultProxyOptions {
  /**
   * Serve the server under this path, as a gateway does (`/chroma`): the prefix is stripped before forwarding, and a
   * request outside it is answered 404 without asking the server.
   */
  pathPrefix?: string;
  /**
   * Require HTTP Basic auth, as a gateway in front of the server does: a request without `Authorization: Basic` of
   * exactly this user and password (UTF-8, RFC 7617) is answered 401 without asking the server. The header is
   * consumed, not forwarded.
   */
  basicAuth?: { user: string; password: string };
  /** Keep the body of each request whose path and query match, to see what a client sent in each request. */
  keepBodies?: RegExp;
}

export async function startHttpFaultProxy(target: string, options: HttpFaultProxyOptions = {}): Promise<HttpFaultProxy> {
  const upstream = new URL(target);
  const rules: ActiveRule[] = [];
  const requests: SeenRequest[] = [];
  const sockets = new Set<Socket>();
  const expectedAuthorization =
    options.basicAuth && `Basic ${Buffer.from(`${options.basicAuth.user}:${options.basicAuth.password}`, "utf8").toString("base64")}`;
  const agent = new http.Agent({ keepAlive: false });

  const pick = (req: IncomingMessage): HttpFault | undefined => {
    for (const rule of rules) {
      if (rule.method && rule.method !== req.method) continue;
      if (rule.path && !rule.path.test(req.url ?? "")) continue;
      rule.seen++;
      if (rule.seen <= (rule.skip ?? 0)) continue;
      if (rule.applied >= (rule.times ?? Infinity)) continue;
      rule.applied++;
      return rule.fault;
    }
    return undefined;
  };

  const forward = (req: IncomingMessage, res: ServerResponse, onAnswer: (answer: IncomingMessage) => void) => {
    const out = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers, agent },
      onAnswer,
    );
    out.on("error", () => res.socket?.destroy());
    req.pipe(out);
  };

  const passOn = (answer: IncomingMessage, res: ServerResponse) => {
    res.writeHead(answer.statusCode ?? 502, answer.headers);
    answer.pipe(res);
  };

  /** Sends the headers and the first `bytes` of the body, then calls `cut` on the client's socket. */
  const partial = (answer: IncomingMessage, res: ServerResponse, bytes: number, cut: (socket: Socket) => void) => {
    res.writeHead(answer.statusCode ?? 502, answer.headers);
    let sent = 0;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      answer.destroy();
      const socket = res.socket;
      if (socket) socket.write("", () => cut(socket));
    };
    answer.on("data", (chunk: Buffer) => {
      if (done) return;
      const room = bytes - sent;
      if (room > 0) res.write(chunk.subarray(0, room));
      sent += Math.min(room, chunk.length);
      if (sent >= bytes) finish();
    });
    answer.on("end", finish);
  };

  const server = http.createServer((req, res) => {
    const refused = expectedAuthorization !== undefined && req.headers.authorization !== expectedAuthorization;
    const fault = refused ? undefined : pick(req);
    const length = Number(req.headers["content-length"]);
    const seen: SeenRequest = {
      method: req.method ?? "",
      path: req.url ?? "",
      ...(fault ? { fault: fault.kind } : {}),
      ...(Number.isFinite(length) ? { bytes: length } : {}),
      ...(refused ? { refused: true as const } : {}),
    };
    requests.push(seen);
    if (options.keepBodies?.test(req.url ?? "")) {
      // Read beside the forwarding pipe, which gets every chunk as well.
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => (seen.body = Buffer.concat(chunks)));
    }
    if (refused) {
      req.resume();
      req.on("end", () => res.writeHead(401, { "content-type": "text/plain", "www-authenticate": 'Basic realm="chroma"' }).end("unauthorized"));
      return;
    }
    if (expectedAuthorization !== undefined) delete req.headers.authorization;
    if (options.pathPrefix !== undefined) {
      const url = req.url ?? "";
      if (!url.startsWith(`${options.pathPrefix}/`)) {
        req.resume();
        req.on("end", () => res.writeHead(404, { "content-type": "text/plain" }).end(`not under ${options.pathPrefix}`));
        return;
      }
      req.url = url.slice(options.pathPrefix.length);
    }
    if (!fault) return forward(req, res, (answer) => passOn(answer, res));
    switch (fault.kind) {
      case "status":
        req.resume();
        req.on("end", () => res.writeHead(fault.status, { "content-type": fault.contentType ?? "text/plain" }).end(fault.body ?? `injected ${fault.status}`));
        return;
      case "stall":
        req.resume();
        return;
      case "delay":
        setTimeout(() => forward(req, res, (answer) => passOn(answer, res)), fault.ms);
        return;
      case "reset":
        return forward(req, res, (answer) => partial(answer, res, fault.afterBytes, (socket) => socket.resetAndDestroy()));
      case "truncate":
        return forward(req, res, (answer) => partial(answer, res, fault.afterBytes, (socket) => socket.end()));
    }
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    inject(rule) {
      const active: ActiveRule = { ...rule, seen: 0, applied: 0 };
      rules.push(active);
      return () => {
        const at = rules.indexOf(active);
        if (at >= 0) rules.splice(at, 1);
      };
    },
    clear() {
      rules.length = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        agent.destroy();
        server.close(() => resolve());
      }),
  };
}

export interface TcpFaultProxy {
  url: string;
  port: number;
  /** Destroys every open connection (both sides); new ones are served as usual. */
  cut(): void;
  /** Cuts every connection and refuses new ones (the port stops listening) until {@link up}. */
  down(): Promise<void>;
  /** Accepts connections but forwards nothing either way and never answers, until {@link up}. */
  blackhole(): void;
  /** Back to passing everything through, on the same port. */
  up(): Promise<void>;
  close(): Promise<void>;
}

/** A TCP proxy to `host:port` (any protocol: Redis, Chroma, S3), whose wire can be cut, downed or blackholed. */
export async function startTcpFaultProxy(target: { host: string; port: number }): Promise<TcpFaultProxy> {
  const pairs = new Set<Socket>();
  let mode: "pass" | "blackhole" = "pass";
  let port = 0;
  let server: Server | undefined;

  const open = async () => {
    const listening = createServer((client) => {
      pairs.add(client);
      client.on("close", () => pairs.delete(client));
      client.on("error", () => client.destroy());
      if (mode === "blackhole") {
        client.resume();
        return;
      }
      const upstream = connect(target.port, target.host);
      pairs.add(upstream);
      upstream.on("close", () => pairs.delete(upstream));
      const end = () => {
        client.destroy();
        upstream.destroy();
      };
      upstream.on("error", end).on("close", end);
      client.on("close", end);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      listening.once("error", reject);
      listening.listen(port, "127.0.0.1", () => resolve());
    });
    const address = listening.address();
    port = typeof address === "object" && address ? address.port : port;
    server = listening;
  };
  const cut = () => {
    for (const socket of pairs) socket.destroy();
  };
  const shut = () =>
    new Promise<void>((resolve) => {
      const closing = server;
      server = undefined;
      cut();
      if (!closing) return resolve();
      closing.close(() => resolve());
    });

  await open();
  return {
    get url() {
      return `127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    cut,
    down: shut,
    blackhole() {
      mode = "blackhole";
      cut();
    },
    async up() {
      mode = "pass";
      if (!server) await open();
    },
    close: shut,
  };
}
