// The static server behind `slimtune web`: the page, the slimtune/web bundle and onnxruntime-web's
// WASM files from dist/web, plus optional extra folders (a model) under a URL prefix. Every reply
// carries COOP/COEP, which make the page cross-origin isolated: without it there is no
// SharedArrayBuffer and ORT's WASM runs on one thread.

import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { SlimtuneError } from "../core/errors.js";

/** dist/web beside this module's folder (dist/cli), where `npm run build` puts the page. */
export const builtPageDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "web");

const contentTypes: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".wasm": "application/wasm",
  ".txt": "text/plain; charset=utf-8",
};

export const isolationHeaders = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
  "Cross-Origin-Resource-Policy": "same-origin",
} as const;

export interface WebServerOptions {
  /** Folder served at "/" (the built page). */
  root: string;
  port: number;
  host: string;
  /** URL prefix ("/model/") → folder, e.g. a model the page loads with ?model=/model/. */
  mounts?: Record<string, string>;
}

export interface RunningServer {
  url: string;
  close(): Promise<void>;
}

/** The file a URL path names inside `dir`, or null when it escapes `dir` or is not a file. */
function fileIn(dir: string, rel: string): string | null {
  const file = path.resolve(dir, `.${path.posix.normalize(`/${rel}`)}`);
  if (file !== dir && !file.startsWith(dir + path.sep)) return null;
  const st = fs.statSync(file, { throwIfNoEntry: false });
  if (st?.isDirectory()) return fileIn(file, "index.html");
  return st?.isFile() ? file : null;
}

export function startWebServer(opts: WebServerOptions): Promise<RunningServer> {
  const root = path.resolve(opts.root);
  if (!fs.existsSync(path.join(root, "index.html"))) {
    throw new SlimtuneError("E_NOT_FOUND", "the page is not built here; run npm run build (it writes dist/web)", root);
  }
  const mounts = Object.entries(opts.mounts ?? {}).map(([prefix, dir]) => [prefix, path.resolve(dir)] as const);
  const server = http.createServer((req, res) => {
    let pathname: string;
    try {
      pathname = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    } catch {
      res.writeHead(400, isolationHeaders).end("bad URL");
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { ...isolationHeaders, Allow: "GET, HEAD" }).end();
      return;
    }
    const mount = mounts.find(([prefix]) => pathname.startsWith(prefix));
    const file = mount ? fileIn(mount[1], pathname.slice(mount[0].length)) : fileIn(root, pathname);
    if (!file) {
      res.writeHead(404, { ...isolationHeaders, "Content-Type": "text/plain" }).end(`not found: ${pathname}`);
      return;
    }
    const size = fs.statSync(file).size;
    res.writeHead(200, {
      ...isolationHeaders,
      "Content-Type": contentTypes[path.extname(file)] ?? "application/octet-stream",
      "Content-Length": size,
      "Cache-Control": "no-store",
    });
    if (req.method === "HEAD") res.end();
    else fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) =>
      reject(new SlimtuneError("E_IO", e.code === "EADDRINUSE" ? `port ${opts.port} is in use; pass another --port` : `cannot serve the page: ${e.message}`)),
    );
    server.listen(opts.port, opts.host, () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : opts.port;
      resolve({
        url: `http://${opts.host === "0.0.0.0" ? "localhost" : opts.host}:${port}/`,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            // Keep-alive connections would hold close() open until they time out.
            server.closeAllConnections();
          }),
      });
    });
  });
}
