// Drives a running Strata gateway with the official `openai` npm client (and plain fetch for
// what a client library never sends). Input (JSON file, argv[2]): {base_url, model, api_key}.
// Output (stdout): a JSON list of {name, ok, detail}, one per check.
import fs from 'node:fs';

import { assert, check, results } from './checks.mjs';
import OpenAI from 'openai';

const req = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const model = req.model;
const client = new OpenAI({ baseURL: `${req.base_url}/v1`, apiKey: req.api_key, maxRetries: 0 });

async function expectError(promise, type, status) {
  try {
    await promise;
  } catch (e) {
    assert(e instanceof type, `expected ${type.name}, got ${e.constructor.name}: ${e.message}`);
    assert(e.status === status, `status ${e.status}`);
    return e;
  }
  throw new Error('no error');
}

await check('models.list', async () => {
  const page = await client.models.list();
  const ids = page.data.map((m) => m.id);
  assert(ids.includes(model), JSON.stringify(ids));
});
await check('models.retrieve', async () => {
  const m = await client.models.retrieve(model);
  assert(m.id === model && m.object === 'model', JSON.stringify(m));
});

let plain = '';
await check('completions', async () => {
  const r = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 8, temperature: 0 });
  assert(r.object === 'text_completion', r.object);
  assert(r.choices.length === 1 && r.choices[0].finish_reason === 'length', JSON.stringify(r.choices));
  assert(r.usage.completion_tokens === 8 && r.usage.total_tokens === r.usage.prompt_tokens + 8, JSON.stringify(r.usage));
  plain = r.choices[0].text;
  return JSON.stringify(plain);
});
await check('completions stream', async () => {
  const stream = await client.completions.create({
    model, prompt: 'Once upon a time', max_tokens: 8, temperature: 0, stream: true,
    stream_options: { include_usage: true },
  });
  let text = '', finish = null, usage = null, chunks = 0;
  for await (const c of stream) {
    chunks++;
    if (c.choices.length) {
      text += c.choices[0].text;
      if (c.choices[0].finish_reason) finish = c.choices[0].finish_reason;
    }
    if (c.usage) usage = c.usage;
  }
  assert(text === plain, `${JSON.stringify(text)} != ${JSON.stringify(plain)}`);
  assert(finish === 'length', finish);
  assert(usage && usage.completion_tokens === 8, JSON.stringify(usage));
  return `${chunks} chunks`;
});
await check('completions: token ids and several prompts', async () => {
  const r = await client.completions.create({ model, prompt: [[1, 300, 301], [1, 302]], max_tokens: 3, temperature: 0 });
  assert(r.choices.length === 2 && r.choices[1].index === 1, JSON.stringify(r.choices));
  assert(r.usage.prompt_tokens === 5 && r.usage.completion_tokens === 6, JSON.stringify(r.usage));
});

let chat = '';
await check('chat', async () => {
  const r = await client.chat.completions.create({
    model, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello' }],
    max_tokens: 6, temperature: 0, user: 'tests',
  });
  assert(r.object === 'chat.completion', r.object);
  assert(r.choices[0].message.role === 'assistant', JSON.stringify(r.choices[0]));
  assert(r.usage.completion_tokens === 6, JSON.stringify(r.usage));
  chat = r.choices[0].message.content;
});
await check('chat stream', async () => {
  const stream = await client.chat.completions.create({
    model, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello' }],
    max_completion_tokens: 6, temperature: 0, stream: true,
  });
  let text = '', role = null, finish = null;
  for await (const c of stream) {
    const d = c.choices[0].delta;
    if (d.role) role = d.role;
    if (d.content) text += d.content;
    if (c.choices[0].finish_reason) finish = c.choices[0].finish_reason;
  }
  assert(role === 'assistant', role);
  assert(text === chat, `${JSON.stringify(text)} != ${JSON.stringify(chat)}`);
  assert(finish === 'length', finish);
});
await check('chat logprobs', async () => {
  const r = await client.chat.completions.create({
    model, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4, temperature: 0,
    logprobs: true, top_logprobs: 2,
  });
  const lp = r.choices[0].logprobs.content;
  assert(lp.length === 4, JSON.stringify(lp));
  assert(lp.every((t) => t.logprob <= 0 && t.top_logprobs.length === 2 && Array.isArray(t.bytes)), JSON.stringify(lp[0]));
  assert(lp[0].top_logprobs[0].logprob === lp[0].logprob, 'greedy picks the most likely token');
});
await check('completions logprobs', async () => {
  const r = await client.completions.create({ model, prompt: 'Hello', max_tokens: 4, temperature: 0, logprobs: 2 });
  const lp = r.choices[0].logprobs;
  assert(lp.tokens.length === 4 && lp.token_logprobs.length === 4 && lp.top_logprobs.length === 4, JSON.stringify(lp));
  assert(lp.tokens.join('') === r.choices[0].text, JSON.stringify(lp.tokens));
});
await check('n=2 with a seed is reproducible', async () => {
  const params = { model, prompt: 'Once', max_tokens: 5, temperature: 1, n: 2, seed: 7 };
  const a = await client.completions.create(params);
  const b = await client.completions.create(params);
  assert(a.choices.length === 2, JSON.stringify(a.choices));
  assert(JSON.stringify(a.choices.map((c) => c.text)) === JSON.stringify(b.choices.map((c) => c.text)), 'not reproducible');
});
await check('stop string', async () => {
  const stop = plain.slice(3, 5);
  const r = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 8, temperature: 0, stop: [stop] });
  assert(r.choices[0].finish_reason === 'stop', r.choices[0].finish_reason);
  assert(r.choices[0].text === plain.slice(0, plain.indexOf(stop)), JSON.stringify(r.choices[0].text));
});
await check('penalties, logit_bias and extras are accepted', async () => {
  const r = await client.completions.create({
    model, prompt: 'Once', max_tokens: 4, temperature: 0, presence_penalty: 0.5, frequency_penalty: 0.5,
    logit_bias: { 300: 100 }, top_k: 5, min_p: 0.05, repetition_penalty: 1.1, ignore_eos: true,
  });
  assert(r.choices[0].finish_reason === 'length', JSON.stringify(r.choices[0]));
});
await check('unknown model is 404', async () => {
  const e = await expectError(client.completions.create({ model: 'nope', prompt: 'x' }), OpenAI.NotFoundError, 404);
  assert(e.code === 'model_not_found', e.code);
});
await check('bad parameter is 400 naming it', async () => {
  const e = await expectError(client.completions.create({ model, prompt: 'x', temperature: 7 }), OpenAI.BadRequestError, 400);
  assert(e.param === 'temperature', e.param);
});
await check('too long a prompt is 400 with both lengths', async () => {
  const e = await expectError(
    client.completions.create({ model, prompt: new Array(2040).fill(300), max_tokens: 100 }), OpenAI.BadRequestError, 400);
  assert(e.code === 'context_length_exceeded', e.code);
  assert(e.message.includes('2040') && e.message.includes('100'), e.message);
});
await check('wrong API key is 401', async () => {
  const other = new OpenAI({ baseURL: `${req.base_url}/v1`, apiKey: 'wrong-key', maxRetries: 0 });
  await expectError(other.models.list(), OpenAI.AuthenticationError, 401);
});
await check('client that disconnects mid-stream', async () => {
  const controller = new AbortController();
  const stream = await client.completions.create(
    { model, prompt: 'Once', max_tokens: 1500, temperature: 0, stream: true, ignore_eos: true },
    { signal: controller.signal });
  let chunks = 0;
  try {
    for await (const c of stream) {
      if (++chunks === 3) controller.abort();
    }
  } catch (e) {
    assert(e.name === 'APIUserAbortError' || e.name === 'AbortError', e.name);
  }
  assert(chunks >= 3, `${chunks} chunks`);
});

// What no client library sends.
const headers = { Authorization: `Bearer ${req.api_key}`, 'Content-Type': 'application/json' };
await check('malformed JSON is 400', async () => {
  const r = await fetch(`${req.base_url}/v1/chat/completions`, { method: 'POST', headers, body: '{"model": ' });
  const body = await r.json();
  assert(r.status === 400 && body.error.type === 'invalid_request_error', `${r.status} ${JSON.stringify(body)}`);
});
await check('wrong types are 400', async () => {
  const r = await fetch(`${req.base_url}/v1/chat/completions`, {
    method: 'POST', headers, body: JSON.stringify({ model, messages: 'hello', max_tokens: 'ten' }),
  });
  const body = await r.json();
  assert(r.status === 400 && body.error.message, `${r.status} ${JSON.stringify(body)}`);
});
await check('a huge body is 413', async () => {
  const r = await fetch(`${req.base_url}/v1/completions`, {
    method: 'POST', headers, body: JSON.stringify({ model, prompt: 'x'.repeat(9 << 20) }),
  });
  assert(r.status === 413, `${r.status}`);
});

console.log(JSON.stringify(results));
