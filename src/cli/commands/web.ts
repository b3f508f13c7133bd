// `slimtune web`: serves the page (quantize, fine-tune, generate and switch adapters in the browser)
// with the headers multi-threaded WASM needs, until Ctrl-C.

import fs from "node:fs";
import { defineCommand } from "citty";
import { SlimtuneError } from "../../core/errors.js";
import { intArg, runAction } from "../args.js";
import { builtPageDir, startWebServer } from "../web-server.js";

export default defineCommand({
  meta: { name: "web", description: "Serve the slimtune page: pick a model, quantize to 4 bits, train PEQA or LoRA adapters, generate and switch adapters, in the browser" },
  args: {
    port: { type: "string", description: "Port to listen on (0 = any free port)", default: "8080" },
    host: { type: "string", description: "Address to listen on", default: "127.0.0.1" },
    model: { type: "string", description: "A model folder to serve at /model/; the page opens it at once" },
  },
  run: ({ args }) =>
    runAction(async () => {
      const port = intArg("port", args.port, 8080, 0);
      if (port > 65535) throw new SlimtuneError("E_ARG", `--port ${port} must be at most 65535`);
      const mounts: Record<string, string> = {};
      if (args.model !== undefined) {
        if (!fs.statSync(args.model, { throwIfNoEntry: false })?.isDirectory()) throw new SlimtuneError("E_NOT_FOUND", "model folder not found", args.model);
        mounts["/model/"] = args.model;
      }
      const server = await startWebServer({ root: builtPageDir, port, host: args.host ?? "127.0.0.1", mounts });
      const page = args.model !== undefined ? `${server.url}?model=/model/` : server.url;
      console.log(`slimtune page at ${page} (Ctrl-C stops)`);
      await new Promise<void>((resolve) => process.once("SIGINT", () => resolve()));
      await server.close();
    }),
});
