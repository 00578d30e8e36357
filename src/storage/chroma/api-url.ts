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
