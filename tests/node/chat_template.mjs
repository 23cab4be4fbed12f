// Renders one chat template for a batch of contexts with @huggingface/jinja (the interpreter
// transformers.js uses), for tests/coordinator/chat. Usage: node chat_template.mjs request.json
//
// Request: {"template": "...", "now": [year, month (1-12), day, hour, minute] (optional),
//           "cases": [{"context": {...}}, ...]}
// Answer (stdout): [{"ok": true, "text": "..."} |
//                   {"ok": false, "error": "...", "raised": true when raise_exception threw}]
//
// The template is parsed once and each case rendered with Template.render(); raise_exception is
// wrapped so that its errors are tagged, and `now` pins the clock strftime_now reads.
import { readFileSync } from "node:fs";
import { Environment, Template } from "@huggingface/jinja";

const request = JSON.parse(readFileSync(process.argv[2], "utf8"));

if (Array.isArray(request.now)) {
  const [year, month, day, hour, minute] = request.now;
  const RealDate = Date;
  globalThis.Date = class extends RealDate {
    constructor(...args) {
      if (args.length === 0) {
        super(year, month - 1, day, hour, minute);
      } else {
        super(...args);
      }
    }
  };
}

// Errors thrown by the template's own raise_exception(), told apart from interpreter errors.
class RaisedError extends Error {}
const originalSet = Environment.prototype.set;
Environment.prototype.set = function (name, value) {
  if (name === "raise_exception") {
    value = (message) => {
      throw new RaisedError(message);
    };
  }
  return originalSet.call(this, name, value);
};

let template = null;
let parseError = null;
try {
  template = new Template(request.template);
} catch (e) {
  parseError = String(e?.message ?? e);
}

const results = request.cases.map(({ context }) => {
  if (parseError !== null) return { ok: false, error: parseError, raised: false };
  try {
    return { ok: true, text: template.render(context ?? {}) };
  } catch (e) {
    return { ok: false, error: String(e?.message ?? e), raised: e instanceof RaisedError };
  }
});

process.stdout.write(JSON.stringify(results));
