// `slimtune web` and its static server: COOP/COEP on every reply (multi-threaded WASM needs them),
// nothing served from outside its folders, and strict flags like every command.

import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningServer, startWebServer } from "../../src/cli/web-server.js";
import { buildWeb } from "../../scripts/build-web.mjs";
import { REF_MODEL, scratchDir } from "../helpers/paths.js";

const ROOT = path.resolve(new URL("../..", import.meta.url).pathname);
const CLI = path.join(ROOT, "dist", "cli", "main.js");

function expectIsolated(res: Response): void {
  expect(res.headers.get("cross-origin-opener-policy")).toBe("same-origin");
  expect(res.headers.get("cross-origin-embedder-policy")).toBe("require-corp");
}

describe("the page's static server", () => {
  let server: RunningServer;
  let secret: string;
  beforeAll(async () => {
    const dir = scratchDir("web-server");
    const root = path.join(dir, "root");
    const model = path.join(dir, "model");
    fs.mkdirSync(root);
    fs.mkdirSync(model);
    fs.writeFileSync(path.join(root, "index.html"), "<!doctype html><p>page</p>");
    fs.writeFileSync(path.join(root, "ort.wasm"), new Uint8Array([0, 97, 115, 109]));
    fs.writeFileSync(path.join(model, "config.json"), "{}");
    secret = path.join(dir, "secret.txt");
    fs.writeFileSync(secret, "not for the page");
    server = await startWebServer({ root, port: 0, host: "127.0.0.1", mounts: { "/model/": model } });
  });
  afterAll(() => server?.close());

  it("serves the page, WASM and a mounted model with COOP/COEP and the right types", async () => {
    const page = await fetch(server.url);
    expectIsolated(page);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    expect(await page.text()).toContain("page");
    const wasm = await fetch(`${server.url}ort.wasm`);
    expect(wasm.headers.get("content-type")).toBe("application/wasm");
    expect(new Uint8Array(await wasm.arrayBuffer())).toEqual(new Uint8Array([0, 97, 115, 109]));
    expect(await (await fetch(`${server.url}model/config.json`)).text()).toBe("{}");
  });

  it("refuses paths that leave its folders, unknown files and writes, still isolated", async () => {
    for (const p of ["../secret.txt", "%2e%2e/secret.txt", "model/..%2f..%2fsecret.txt", "model/%2e%2e/%2e%2e/secret.txt", "missing.js"]) {
      const res = await fetch(`${server.url}${p}`);
      expect(res.status, p).toBe(404);
      expectIsolated(res);
      expect(await res.text()).not.toContain("not for the page");
    }
    expect((await fetch(server.url, { method: "POST", body: "x" })).status).toBe(405);
  });
});

describe("slimtune web", () => {
  it("checks its flags strictly", () => {
    const r = spawnSync(process.execPath, [CLI, "web", "--prot", "8081"], { encoding: "utf8" });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/E_ARG.*--prot.*did you mean --port\?/s);
    const bad = spawnSync(process.execPath, [CLI, "web", "--port", "70000"], { encoding: "utf8" });
    expect(bad.stderr).toMatch(/E_ARG.*--port 70000 must be at most 65535/);
  });

  it("serves the built page and a --model folder until stopped", async () => {
    await buildWeb(path.join(ROOT, "dist", "web"));
    const child = spawn(process.execPath, [CLI, "web", "--port", "0", "--model", REF_MODEL], { stdio: ["ignore", "pipe", "pipe"] });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = "";
        child.stdout.on("data", (d) => {
          out += d;
          const m = /slimtune page at (\S+)/.exec(out);
          if (m) resolve(m[1]!);
        });
        child.on("exit", (code) => reject(new Error(`slimtune web exited with ${code}`)));
      });
      expect(url).toMatch(/\?model=\/model\/$/);
      const page = await fetch(url);
      expectIsolated(page);
      expect(await page.text()).toContain("slimtune in the browser");
      const bundle = await fetch(new URL("slimtune-web.js", url));
      expect(bundle.headers.get("content-type")).toMatch(/^text\/javascript/);
      const config = (await (await fetch(new URL("/model/config.json", url))).json()) as { model_type: string };
      expect(config.model_type).toBe("llama");
    } finally {
      child.kill("SIGINT");
    }
  });
});
