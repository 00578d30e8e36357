import { readFileSync } from "node:fs";
import { ChromaClient } from "chromadb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { chromaApiUrl, collectionUrl } from "../src/storage/chroma/api-url.js";
import { chromaHttpClient, SUPPORTED_CHROMADB } from "../src/storage/chroma/fetch.js";
import type { ChromaStore } from "../src/storage/chroma/client.js";
import type { RecordColumns } from "../src/storage/chroma/record-columns.js";
import { startHttpFaultProxy, type HttpFaultProxy } from "./helpers/fault-proxy.js";
import { chromaStore, chromaUrl, seedCollection, uniqueName, vectors } from "./helpers/services.js";

// A Chroma behind a gateway that serves it under a path (CHROMA_URL=https://host/chroma/): every kind of request
// vectorkeeper makes (the chromadb client's, the bulk reader's, the REST calls', the latency probe's query) must keep
// the path. The proxy answers 404 to anything outside it, as a gateway would.
const PREFIX = "/chroma";
let proxy: HttpFaultProxy;

beforeAll(async () => {
  proxy = await startHttpFaultProxy(chromaUrl(), { pathPrefix: PREFIX });
});
afterAll(() => proxy.close());

async function all(pages: AsyncGenerator<RecordColumns>): Promise<RecordColumns[]> {
  const out: RecordColumns[] = [];
  for await (const page of pages) out.push(page);
  return out;
}

const queryAnswer = z.object({ ids: z.array(z.array(z.string())), distances: z.array(z.array(z.number())) });

describe("a Chroma URL with a path (behind a gateway)", () => {
  for (const suffix of ["/", ""]) {
    it(`keeps the path for the client, bulk get, REST calls and the probe query (URL ${suffix ? "with" : "without"} a trailing slash)`, async () => {
      const store: ChromaStore = chromaStore(`${proxy.url}${PREFIX}${suffix}`);
      const seen = proxy.requests.length;
      const name = uniqueName("prefix");
      await seedCollection(store, name, 40, 8);
      const collection = await store.openCollection(name);

      const pages = await all(store.readPages(collection, { pageSize: 15, readAhead: 1 }));
      expect(pages.flatMap((page) => page.ids)).toEqual(Array.from({ length: 40 }, (_, i) => `rec-${i}`));

      const described = await store.describeCollection(name);
      expect(described.id).toBe(collection.id);
      expect((await store.writeLimits()).records).toBeGreaterThan(0);
      // The API description answers only under the path; outside it the proxy's 404 would read as "none served".
      expect(await store.missingFeatures(["uris"])).toBeDefined();
      const copy = uniqueName("prefix_copy");
      await store.createLike(copy, { metadata: null, configuration: described.configuration_json ?? {}, schema: described.schema ?? undefined });
      expect(await store.exists(copy)).toBe(true);

      const query = store.queryRequest(collection, vectors(40, 8)[7]!, 1, 10_000);
      const answer = await fetch(query.url, { method: "POST", headers: { ...query.headers, "content-type": "application/json" }, body: query.body });
      expect(answer.status).toBe(200);
      const nearest = queryAnswer.parse(await answer.json());
      expect(nearest.ids[0]).toEqual(["rec-7"]);
      expect(nearest.distances[0]![0]).toBeCloseTo(0, 5);

      await store.deleteCollection(copy);
      await store.deleteCollection(name);
      const requests = proxy.requests.slice(seen);
      expect(requests.length).toBeGreaterThan(8);
      expect(requests.filter((request) => !request.path.startsWith(`${PREFIX}/`))).toEqual([]);
    });
  }

  it("appends API paths to the base's path, dropping its query and fragment", () => {
    const namespace = { tenant: "t 1", database: "d/b" };
    expect(collectionUrl("https://host/chroma/?x=1#f", namespace, "id", "get").href).toBe(
      "https://host/chroma/api/v2/tenants/t%201/databases/d%2Fb/collections/id/get",
    );
    expect(collectionUrl("http://127.0.0.1:8000", namespace).href).toBe("http://127.0.0.1:8000/api/v2/tenants/t%201/databases/d%2Fb/collections");
    expect(chromaApiUrl("https://host/a/b", "openapi.json").href).toBe("https://host/a/b/openapi.json");
  });
});

/** The path and the request limits both go through the chromadb client's private HTTP client (see fetch.ts). */
describe("the chromadb client's HTTP client", () => {
  it("has the shape vectorkeeper changes, in the chromadb release package.json pins", () => {
    const manifest = z
      .object({ dependencies: z.object({ chromadb: z.string() }) })
      .parse(JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")));
    expect(manifest.dependencies.chromadb).toBe(SUPPORTED_CHROMADB);

    const client = new ChromaClient({ host: "127.0.0.1", port: 8000 });
    const http = chromaHttpClient(client);
    expect(http.getConfig().baseUrl).toBe("http://127.0.0.1:8000");
    http.setConfig({ baseUrl: "http://127.0.0.1:8000/chroma" });
    // The client reads its base from this object, not from a copy.
    expect(chromaHttpClient(client).getConfig().baseUrl).toBe("http://127.0.0.1:8000/chroma");
  });

  it("is refused loudly, naming the installed chromadb and the one to install, when a client has none", () => {
    const installed = z
      .object({ version: z.string() })
      .parse(JSON.parse(readFileSync(new URL("../node_modules/chromadb/package.json", import.meta.url), "utf8"))).version;
    expect(() => chromaHttpClient({})).toThrow(
      `chromadb ${installed} has no private HTTP client (apiClient with getConfig/setConfig), which vectorkeeper wraps for timeouts and CHROMA_URL's path; install chromadb ${SUPPORTED_CHROMADB} as package.json pins it (npm ci)`,
    );
  });
});
