// Mutations of valid files for reader fuzzing, as fast-check arbitraries: byte flips, truncation,
// inserted bytes, huge integers written over binary fields, and, for JSON (and safetensors
// headers), a field replaced by a value of the wrong type, a huge number, a long string or
// 20,000 levels of nesting, or removed. Shared by test/fuzz (fast-check properties over src/) and
// bench/fuzz-readers.mjs (many cases over dist/).

/** Stands in for 20,000 levels of nesting inside a JSON value, expanded after stringifying. */
const DEEP = "\u0000deep-nesting\u0000";
const DEEP_TEXT = `${"[".repeat(20_000)}${"]".repeat(20_000)}`;

/** Values a reader must survive in any JSON field. */
function weirdValue(fc) {
  return fc.oneof(
    fc.constantFrom(1e9, 2 ** 31, 2 ** 32, 2 ** 53 + 2, 1e308, -1, 0, 0.5, -0.0, 99999999999),
    fc.constantFrom("", "x".repeat(100_000), "\u0000", "-1", "NaN", "1e400"),
    fc.constantFrom(null, true, false, [], {}, DEEP, [DEEP], { a: DEEP }),
    fc.array(fc.integer({ min: -5, max: 1 << 30 }), { maxLength: 6 }),
    fc.jsonValue({ maxDepth: 3 }),
  );
}

/**
 * One mutation of one of `count` files. `json` mutations apply only to files with a JSON form
 * (the runner skips them to a byte flip otherwise); `where` and `pick` are fractions scaled to
 * the file at hand, so a mutation is meaningful for any file size.
 */
export function mutationArb(fc, count) {
  const file = fc.nat({ max: count - 1 });
  // A fraction of the file; integers, since fast-check's doubles crowd at 0 and 1.
  const where = fc.integer({ min: 0, max: 999_999 }).map((x) => x / 1e6);
  return fc.oneof(
    fc.record({ kind: fc.constant("flip"), file, flips: fc.array(fc.tuple(where, fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 8 }) }),
    fc.record({ kind: fc.constant("truncate"), file, where }),
    fc.record({
      kind: fc.constant("insert"),
      file,
      where,
      bytes: fc.oneof(
        fc.uint8Array({ minLength: 1, maxLength: 64 }),
        fc.constantFrom("99999999999999999999", "-1", "1e308", DEEP_TEXT, "\u0000", "\uFFFF\uD800").map((s) => new TextEncoder().encode(s)),
      ),
    }),
    fc.record({
      kind: fc.constant("huge-int"),
      file,
      where,
      width: fc.constantFrom(4, 8),
      value: fc.constantFrom(0xffffffffn, 0x7fffffffn, 0x80000000n, 2n ** 63n, 2n ** 64n - 1n, 1n << 40n, 0n),
    }),
    fc.record({ kind: fc.constant("json-replace"), file, pick: where, value: weirdValue(fc) }),
    fc.record({ kind: fc.constant("json-delete"), file, pick: where }),
    fc.record({ kind: fc.constant("json-add"), file, pick: where, key: fc.constantFrom("__metadata__", "x", "", "0", "__proto__"), value: weirdValue(fc) }),
  );
}

/** Every path to a value inside `json` (objects and arrays, at most `limit` paths). */
function paths(json, limit = 4000) {
  const out = [];
  const walk = (v, p) => {
    if (out.length >= limit) return;
    out.push(p);
    if (Array.isArray(v)) v.slice(0, 50).forEach((x, i) => walk(x, [...p, i]));
    else if (v && typeof v === "object") for (const k of Object.keys(v).slice(0, 200)) walk(v[k], [...p, k]);
  };
  walk(json, []);
  return out;
}

function stringify(json) {
  return JSON.stringify(json).replaceAll(JSON.stringify(DEEP), DEEP_TEXT);
}

function mutateJson(json, m) {
  const all = paths(json);
  const target = all[Math.floor(m.pick * all.length)];
  if (target.length === 0) return m.kind === "json-replace" ? m.value : json;
  let parent = json;
  for (const k of target.slice(0, -1)) parent = parent[k];
  const last = target[target.length - 1];
  if (m.kind === "json-replace") parent[last] = m.value;
  else if (m.kind === "json-delete") {
    if (Array.isArray(parent)) parent.splice(last, 1);
    else delete parent[last];
  } else {
    const holder = parent[last] && typeof parent[last] === "object" && !Array.isArray(parent[last]) ? parent[last] : parent;
    if (!Array.isArray(holder)) Object.defineProperty(holder, m.key, { value: m.value, enumerable: true, writable: true, configurable: true });
  }
  return json;
}

/** A safetensors file's header as JSON and the bytes after it, or null when the file has no readable header. */
function splitSafetensors(bytes) {
  if (bytes.length < 8) return null;
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (8 + n > bytes.length) return null;
  try {
    return { header: JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))), data: bytes.subarray(8 + n) };
  } catch {
    return null;
  }
}

function joinSafetensors(headerText, data) {
  const header = new TextEncoder().encode(headerText);
  const out = new Uint8Array(8 + header.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(header.length), true);
  out.set(header, 8);
  out.set(data, 8 + header.length);
  return out;
}

/** The bytes of file `name` after mutation `m` (`bytes` is not modified). */
export function mutateFile(name, bytes, m) {
  const at = (f, len) => Math.min(len, Math.floor(f * len));
  switch (m.kind) {
    case "flip": {
      const out = Uint8Array.from(bytes);
      if (out.length === 0) return out;
      for (const [w, x] of m.flips) out[at(w, out.length - 1)] ^= x;
      return out;
    }
    case "truncate":
      return bytes.slice(0, at(m.where, bytes.length));
    case "insert": {
      const i = at(m.where, bytes.length);
      const out = new Uint8Array(bytes.length + m.bytes.length);
      out.set(bytes.subarray(0, i));
      out.set(m.bytes, i);
      out.set(bytes.subarray(i), i + m.bytes.length);
      return out;
    }
    case "huge-int": {
      const out = Uint8Array.from(bytes);
      if (out.length < m.width) return out;
      const i = at(m.where, out.length - m.width);
      const view = new DataView(out.buffer);
      if (m.width === 4) view.setUint32(i, Number(m.value & 0xffffffffn), true);
      else view.setBigUint64(i, m.value & (2n ** 64n - 1n), true);
      return out;
    }
    default: {
      // JSON mutations: JSON files by name, safetensors headers; anything else gets a byte flip instead.
      if (name.endsWith(".json")) {
        let json;
        try {
          json = JSON.parse(new TextDecoder().decode(bytes));
        } catch {
          return bytes;
        }
        return new TextEncoder().encode(stringify(mutateJson(json, m)));
      }
      if (name.endsWith(".safetensors")) {
        const parts = splitSafetensors(bytes);
        if (!parts) return bytes;
        return joinSafetensors(stringify(mutateJson(parts.header, m)), parts.data);
      }
      return mutateFile(name, bytes, { kind: "flip", file: m.file, flips: [[m.pick, 0x5a]] });
    }
  }
}
