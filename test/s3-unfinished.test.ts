import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { S3Store } from "../src/storage/objects/s3-store.js";
import { S3_CREDENTIALS } from "./helpers/backup-fixtures.js";

// s3rver does not list multipart uploads (it answers NotImplemented, which collectUnfinished treats as "none"), so
// the listing S3 gives is played by a small HTTP server here: the one part of this test that is not a real store.
// It answers ListMultipartUploads in two pages, as S3 does past 1,000 uploads, and records each abort.
const OLD = "2020-01-01T00:00:00.000Z";
const uploadXml = (key: string, id: string, initiated?: string) =>
  `<Upload><Key>${key}</Key><UploadId>${id}</UploadId>${initiated ? `<Initiated>${initiated}</Initiated>` : ""}</Upload>`;

let server: Server;
let endpoint = "";
const aborted: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://s3");
    if (req.method === "DELETE" && url.searchParams.has("uploadId")) {
      aborted.push(url.searchParams.get("uploadId")!);
      res.writeHead(204).end();
      return;
    }
    if (req.method === "GET" && url.searchParams.has("uploads")) {
      const second = url.searchParams.get("key-marker") === "vk/c/b" && url.searchParams.get("upload-id-marker") === "u2";
      const body = second
        ? `<IsTruncated>false</IsTruncated>${uploadXml("vk/c/c", "u3", OLD)}`
        : `<IsTruncated>true</IsTruncated><NextKeyMarker>vk/c/b</NextKeyMarker><NextUploadIdMarker>u2</NextUploadIdMarker>${uploadXml("vk/c/a", "u1", OLD)}${uploadXml("vk/c/b", "u2")}`;
      res.writeHead(200, { "content-type": "application/xml" });
      res.end(`<?xml version="1.0" encoding="UTF-8"?><ListMultipartUploadsResult><Bucket>b</Bucket>${body}</ListMultipartUploadsResult>`);
      return;
    }
    res.writeHead(400).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe("unfinished multipart uploads", () => {
  it("follows the listing's markers past its first page, and never aborts an upload without a start time", async () => {
    const store = new S3Store({ bucket: "b", prefix: "vk", endpoint, forcePathStyle: true, region: "us-east-1", credentials: S3_CREDENTIALS });
    expect(await store.collectUnfinished("c/", new Date())).toEqual(["c/a", "c/c"]);
    expect(aborted).toEqual(["u1", "u3"]);
  });
});
