import { connect, createServer, type Server, type Socket } from "node:net";

/**
 * A TCP proxy that holds every chunk from client to server for `delayMs`, in the spirit of toxiproxy's latency toxic:
 * it slows a real Chroma down so a job is reliably still running when a test signals the worker.
 */
export async function startLatencyProxy(target: URL, delayMs: number): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    sockets.add(client).add(upstream);
    client.on("data", (chunk) => setTimeout(() => upstream.writable && upstream.write(chunk), delayMs));
    upstream.on("data", (chunk) => client.writable && client.write(chunk));
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("close", end).on("error", end);
    upstream.on("close", end).on("error", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
