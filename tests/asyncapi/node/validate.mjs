// Parses an AsyncAPI document with the official parser (@asyncapi/parser) and fails on any
// error. Usage: node validate.mjs FILE. Prints the diagnostics as JSON on stdout:
// {"errors": [...], "warnings": [...], "summary": {...}}; exit status 1 when there are errors.
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";

const file = process.argv[2];
const text = readFileSync(file, "utf8");
const parser = new Parser();
const { document, diagnostics } = await parser.parse(text, { source: file });
const describe = (d) => ({ code: d.code, message: d.message, path: d.path.join("/") });
const errors = diagnostics.filter((d) => d.severity === 0).map(describe);
const warnings = diagnostics.filter((d) => d.severity === 1).map(describe);
const summary = document
  ? {
      version: document.version(),
      channels: document.channels().all().map((c) => c.address()),
      operations: document.operations().all().map((o) => `${o.action()} ${o.id()}`),
      messages: document.messages().all().map((m) => m.name()),
      servers: document.servers().all().map((s) => `${s.id()} ${s.protocol()}`),
    }
  : null;
console.log(JSON.stringify({ errors, warnings, summary }, null, 2));
process.exit(errors.length > 0 || !document ? 1 : 0);
