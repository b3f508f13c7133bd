// `--help` text, wrapped to the terminal: citty pads every option line to the longest description
// (846 characters for finetune), so each description is wrapped into the space right of the flags.

import type { ArgsDef, CommandDef } from "citty";

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines.length ? lines : [""];
}

function flagLabel(name: string, def: ArgsDef[string]): string {
  return def.type === "boolean" ? `--${name}` : `--${name} <${name.replace(/-/g, "_")}>`;
}

/** The help text of a command (or of the top-level command with its sub-commands), at most `columns` wide. */
export function renderHelp(
  path: string,
  meta: { description?: string; version?: string },
  args: ArgsDef,
  subCommands: Array<[string, string]> = [],
  columns = process.stdout.columns || 100,
): string {
  const width = Math.max(60, Math.min(columns, 120));
  const out: string[] = [...wrap(`${meta.description ?? ""}${meta.version ? ` (${path} v${meta.version})` : ""}`, width), ""];
  const flags = Object.entries(args).filter(([, d]) => d.type !== "positional");
  const positionals = Object.entries(args).filter(([, d]) => d.type === "positional");
  out.push(`USAGE  ${path}${positionals.map(([name]) => ` <${name}>`).join("")}${flags.length ? " [FLAGS]" : ""}${subCommands.length ? " <command>" : ""}`, "");
  const table = (rows: Array<[string, string]>) => {
    const left = Math.min(34, Math.max(...rows.map(([l]) => l.length)) + 2);
    for (const [label, text] of rows) {
      const body = wrap(text, width - left - 2);
      if (label.length + 2 > left) out.push(`  ${label}`, ...body.map((b) => `${" ".repeat(left + 2)}${b}`));
      else out.push(`  ${label.padEnd(left)}${body[0]}`, ...body.slice(1).map((b) => `${" ".repeat(left + 2)}${b}`));
    }
  };
  if (positionals.length) {
    out.push("ARGUMENTS");
    table(positionals.map(([name, def]) => [`<${name}>`, def.description ?? ""]));
    out.push("");
  }
  if (flags.length) {
    out.push("FLAGS");
    table(flags.map(([name, def]) => [flagLabel(name, def), [def.description, def.default !== undefined && def.type !== "boolean" ? `(default: ${def.default})` : ""].filter(Boolean).join(" ")]));
    out.push("");
  }
  if (subCommands.length) {
    out.push("COMMANDS");
    table(subCommands);
    out.push("", `Use ${path} <command> --help for a command's flags.`);
  }
  return out.join("\n");
}

export async function resolveCommand(loader: () => Promise<CommandDef>): Promise<{ meta: { name?: string; description?: string; version?: string }; args: ArgsDef; def: CommandDef }> {
  const def = await loader();
  const meta = (typeof def.meta === "function" ? await def.meta() : await def.meta) ?? {};
  const args = (typeof def.args === "function" ? await def.args() : await def.args) ?? {};
  return { meta, args, def };
}
