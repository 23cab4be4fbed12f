// Drives a running Strata gateway with the official `ollama` npm client. Input (JSON file,
// argv[2]): {base_url, model, api_key}. Output: a JSON list of {name, ok, detail}.
import fs from 'node:fs';

import { assert, check, results } from './checks.mjs';
import { Ollama } from 'ollama';

const req = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const model = req.model;
const client = new Ollama({ host: req.base_url, headers: { Authorization: `Bearer ${req.api_key}` } });

await check('version', async () => {
  const v = await client.version();
  assert(typeof v.version === 'string', JSON.stringify(v));
});
await check('list', async () => {
  const r = await client.list();
  assert(r.models.some((m) => m.name === model), JSON.stringify(r));
});
await check('show', async () => {
  const r = await client.show({ model });
  assert(r.details && r.model_info, JSON.stringify(r));
});

let text = '';
await check('generate', async () => {
  const r = await client.generate({ model, prompt: 'Once upon a time', stream: false, options: { temperature: 0, num_predict: 8 } });
  assert(r.done === true && r.done_reason === 'length', JSON.stringify(r));
  assert(r.eval_count === 8 && r.prompt_eval_count > 0, JSON.stringify(r));
  text = r.response;
  return JSON.stringify(text);
});
await check('generate stream', async () => {
  const stream = await client.generate({ model, prompt: 'Once upon a time', stream: true, options: { temperature: 0, num_predict: 8 } });
  let out = '', last = null;
  for await (const part of stream) {
    out += part.response;
    last = part;
  }
  assert(out === text, `${JSON.stringify(out)} != ${JSON.stringify(text)}`);
  assert(last.done === true && last.eval_count === 8, JSON.stringify(last));
});
await check('generate with model:latest and raw', async () => {
  const r = await client.generate({ model: `${model}:latest`, prompt: 'Hello', raw: true, stream: false, options: { num_predict: 3, seed: 1 } });
  assert(r.done === true && r.eval_count === 3, JSON.stringify(r));
});

let reply = '';
await check('chat', async () => {
  const r = await client.chat({ model, messages: [{ role: 'user', content: 'Hello' }], stream: false, options: { temperature: 0, num_predict: 6 } });
  assert(r.message.role === 'assistant' && r.done === true, JSON.stringify(r));
  reply = r.message.content;
});
await check('chat stream', async () => {
  const stream = await client.chat({ model, messages: [{ role: 'user', content: 'Hello' }], stream: true, options: { temperature: 0, num_predict: 6 } });
  let out = '', done = false;
  for await (const part of stream) {
    out += part.message.content;
    done = part.done;
  }
  assert(done && out === reply, `${JSON.stringify(out)} != ${JSON.stringify(reply)}`);
});
await check('unknown model', async () => {
  try {
    await client.generate({ model: 'nope', prompt: 'x', stream: false });
  } catch (e) {
    assert(e.status_code === 404 && /not found/.test(e.error), `${e.status_code} ${e.error}`);
    return;
  }
  throw new Error('no error');
});
// The exact call the issue names: requests.post(.../api/generate, json={...}).json()["response"].
await check('plain POST /api/generate', async () => {
  const r = await fetch(`${req.base_url}/api/generate`, {
    method: 'POST', headers: { Authorization: `Bearer ${req.api_key}` },
    body: JSON.stringify({ model, prompt: 'Once upon a time', stream: false }),
  });
  const body = await r.json();
  assert(r.status === 200 && typeof body.response === 'string', JSON.stringify(body));
});
await check('vLLM /tokenize and /detokenize', async () => {
  const h = { Authorization: `Bearer ${req.api_key}`, 'Content-Type': 'application/json' };
  const t = await (await fetch(`${req.base_url}/tokenize`, { method: 'POST', headers: h, body: JSON.stringify({ model, prompt: 'Hello world' }) })).json();
  assert(t.count === t.tokens.length && t.max_model_len > 0, JSON.stringify(t));
  const d = await (await fetch(`${req.base_url}/detokenize`, { method: 'POST', headers: h, body: JSON.stringify({ model, tokens: t.tokens }) })).json();
  assert(d.prompt.includes('Hello world'), JSON.stringify(d));
  const m = await (await fetch(`${req.base_url}/tokenize`, { method: 'POST', headers: h, body: JSON.stringify({ model, messages: [{ role: 'user', content: 'Hi' }] }) })).json();
  assert(m.count > 3, JSON.stringify(m));
});

console.log(JSON.stringify(results));
