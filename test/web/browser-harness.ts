// Serving the built page and driving Debian's Chromium through playwright-core, for the browser
// tests and the browser benchmark. Never downloads a browser: CHROMIUM (default /usr/bin/chromium)
// must exist, as .ci/run installs it.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { type BrowserContext, type Page, chromium } from "playwright-core";
import { type RunningServer, startWebServer } from "../../src/cli/web-server.js";
import { SHARED } from "../helpers/paths.js";

export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

export interface BrowserRig {
  server: RunningServer;
  context: BrowserContext;
  page: Page;
  /** Console lines and page errors, for failure messages. */
  log: string[];
  close(): Promise<void>;
}

/** Chromium flags that give headless Chromium a WebGPU adapter on a machine without a GPU (SwiftShader, in software). */
export const WEBGPU_ARGS = ["--enable-unsafe-webgpu", "--use-angle=swiftshader", "--enable-features=Vulkan", "--use-webgpu-adapter=swiftshader"];

/** Builds the page into a temp folder, serves it (models of /work/shared at /models/) and opens it in headless Chromium. */
export async function openRig(query: string, extraArgs: readonly string[] = []): Promise<BrowserRig> {
  const { buildWeb } = await import("../../scripts/build-web.mjs");
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "slimtune-web-page-"));
  await buildWeb(root);
  const server = await startWebServer({ root, port: 0, host: "127.0.0.1", mounts: { "/models/": path.join(SHARED, "models") } });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "slimtune-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    acceptDownloads: true,
    // --disable-gpu unless the caller asks for WebGPU (SwiftShader's software adapter: WEBGPU_ARGS).
    args: ["--no-sandbox", ...(extraArgs.length ? extraArgs : ["--disable-gpu"]), "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const log: string[] = [];
  page.on("console", (m) => log.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => log.push(`pageerror: ${e.message}`));
  await page.goto(`${server.url}${query}`);
  await page.evaluate(() => (globalThis as unknown as { slimtuneApp: { ready: Promise<void> } }).slimtuneApp.ready);
  return {
    server,
    context,
    page,
    log,
    close: async () => {
      await context.close();
      await server.close();
      fs.rmSync(profile, { recursive: true, force: true });
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}
