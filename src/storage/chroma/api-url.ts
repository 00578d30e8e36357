/**
 * URLs of Chroma's API under CHROMA_URL, written once for every caller (the chromadb client, the bulk reader, the REST
 * calls, the latency probe). CHROMA_URL may carry a path: a Chroma behind a gateway at `https://host/chroma/` serves
 * `/chroma/api/v2/…`, so paths are appended to the base's path, never resolved against its root. Its query and
 * fragment are dropped: they would otherwise end up in the middle of every URL.
 */
export function chromaApiUrl(base: string, path: string): URL {
  const url = new URL(base);
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/${path.replace(/^\/+/, "")}`;
  url.search = "";
  url.hash = "";
  return url;
}

/** Where the collections of one tenant's database live. */
export interface ChromaNamespace {
  tenant: string;
  database: string;
}

/**
 * `…/api/v2/tenants/T/databases/D/collections`, then the collection (by id, or by name where the API takes one) and
 * the tail (`get`, `query`), each left out when not given.
 */
export function collectionUrl(base: string, { tenant, database }: ChromaNamespace, collection?: string, tail?: string): URL {
  const parts = ["api/v2/tenants", encodeURIComponent(tenant), "databases", encodeURIComponent(database), "collections"];
  if (collection !== undefined) parts.push(encodeURIComponent(collection));
  if (tail !== undefined) parts.push(tail);
  return chromaApiUrl(base, parts.join("/"));
}

/**
 * Points a chromadb client at CHROMA_URL's path too: the client builds its base from host and port alone, so behind a
 * gateway its calls would go to the gateway's root. Its HTTP client is private (see fetch.ts); false when this
 * chromadb version has none of that shape, and the caller refuses a URL with a path rather than lose it silently.
 * `base` carries no user info (see chromaEndpoint): fetch refuses a URL with credentials.
 */
export function keepBasePath(client: object, base: string): boolean {
  const api: unknown = Reflect.get(client, "apiClient");
  const setConfig: unknown = typeof api === "object" && api !== null ? Reflect.get(api, "setConfig") : undefined;
  if (typeof setConfig !== "function") return false;
  // The client appends `/api/v2/…` to its base itself: the base without a trailing slash.
  setConfig.call(api, { baseUrl: chromaApiUrl(base, "").href.replace(/\/$/, "") });
  return true;
}
