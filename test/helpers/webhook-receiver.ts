import { createServer, type IncomingHttpHeaders } from "node:http";

export interface Received {
  body: { text: string; alert: { transition: string; check: string; subject: string } };
  headers: IncomingHttpHeaders;
}

/** A real HTTP server on a free port that records every POST, standing in for Slack. */
export async function startWebhookReceiver(): Promise<{ url: string; received: Received[]; close(): Promise<void> }> {
  const received: Received[] = [];
  const server = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk: Buffer) => (body += chunk.toString()));
    request.on("end", () => {
      received.push({ body: JSON.parse(body) as Received["body"], headers: request.headers });
      response.writeHead(200).end("ok");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}/services/T000/B000/secret-token`,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
