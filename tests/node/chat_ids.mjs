// Chat prompts as transformers.js builds them, for tests/coordinator/chat: the model folder's
// tokenizer.json and tokenizer_config.json (or a template given explicitly) through
// apply_chat_template, rendered and tokenized. Usage: node chat_ids.mjs request.json, where
//   {"model_dir": "/path", "chat_template": "..." (optional), "conversations": [[messages], ...]}
// Prints [{"text": "...", "ids": [...]}, ...] with add_generation_prompt true.
import { readFileSync } from "node:fs";
import path from "node:path";
import { AutoTokenizer, env } from "@huggingface/transformers";

const request = JSON.parse(readFileSync(process.argv[2], "utf8"));
const dir = path.resolve(request.model_dir);
env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = path.dirname(dir) + path.sep;
const tokenizer = await AutoTokenizer.from_pretrained(path.basename(dir));
const options = { add_generation_prompt: true };
if (request.chat_template) options.chat_template = request.chat_template;
const out = request.conversations.map((messages) => ({
  text: tokenizer.apply_chat_template(messages, { ...options, tokenize: false }),
  ids: Array.from(tokenizer.apply_chat_template(messages, { ...options, tokenize: true,
                                                           return_tensor: false,
                                                           return_dict: false })),
}));
process.stdout.write(JSON.stringify(out));
