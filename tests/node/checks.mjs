// Shared by the API client scripts: a check list printed as JSON, and small assertions.
export const results = [];

export async function check(name, fn) {
  try {
    const detail = await fn();
    results.push({ name, ok: true, detail: detail === undefined ? '' : String(detail) });
  } catch (e) {
    results.push({ name, ok: false, detail: String((e && e.stack) || e) });
  }
}

export function assert(cond, message) {
  if (!cond) throw new Error(message);
}
