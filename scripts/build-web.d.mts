// Types of build-web.mjs for the TypeScript tests that build the page.
export function buildWeb(outDir?: string, options?: { minify?: boolean }): Promise<{ outDir: string; nodeImporters: Map<string, string[]> }>;
