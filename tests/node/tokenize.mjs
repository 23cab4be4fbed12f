// Reference tokenization with @huggingface/transformers (transformers.js) for the C++ tests.
// Usage: node tokenize.mjs request.json, where the request is
//   {"tokenizer_dir": "/path/with/tokenizer.json+tokenizer_config.json",
//    "texts": ["...", ...], "decode": [[ids...], ...], "skip_special_tokens": false}
// Prints {"ids": [[...], ...], "ids_with_special": [[...], ...], "decoded": ["...", ...]}:
// each text encoded with add_special_tokens false and true (special tokens written in the text
// are always parsed, as transformers.js does), and each id list decoded (never cleaning up
// tokenization spaces, so that decoding is lossless).
import { readFileSync } from "node:fs";
import path from "node:path";
import { AutoTokenizer, env } from "@huggingface/transformers";

const request = JSON.parse(readFileSync(process.argv[2], "utf8"));
const dir = path.resolve(request.tokenizer_dir);
env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = path.dirname(dir) + path.sep;
const tokenizer = await AutoTokenizer.from_pretrained(path.basename(dir));

const texts = request.texts ?? [];
const encode = (add_special_tokens) =>
  texts.map((text) => Array.from(tokenizer.encode(text, { add_special_tokens })));
const result = { ids: encode(false), ids_with_special: encode(true), decoded: [] };
if (request.decode) {
  result.decoded = request.decode.map((tokens) =>
    tokens.length === 0 ? "" : tokenizer.decode(tokens, {
      skip_special_tokens: request.skip_special_tokens ?? false,
      clean_up_tokenization_spaces: false,
    }));
}
process.stdout.write(JSON.stringify(result));
