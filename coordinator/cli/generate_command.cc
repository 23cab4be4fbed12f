// `strata generate`: load a model, encode the prompt (optionally through its chat template),
// generate, stream the text to stdout.
#include <cstdio>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status.h"
#include "coordinator/chat/chat_prompt.h"
#include "coordinator/chat/template_source.h"
#include "coordinator/cli/commands.h"
#include "coordinator/tokenizer/incremental_detokenizer.h"
#include "coordinator/tokenizer/tokenizer.h"
#include "coordinator/engine/batch_generate.h"
#include "worker/runtime/local_executor.h"

namespace strata::cli {
namespace {

struct GenerateFlags {
  std::string model;
  std::string prompt = "Once upon a time";
  int64_t max_new_tokens = 64;
  float temperature = 0.0f;
  float top_p = 1.0f;
  int32_t top_k = 0;
  float min_p = 0.0f;
  uint64_t seed = 0;
  int threads = 0;
  std::string device = "cpu";
  std::string kv_dtype;
  GpuFlags gpu;
  std::string dtype;
  bool ignore_eos = false;
  bool chat = false;
  std::string system;
};

// The prompt token ids: the text as is, or (with --chat) a user message, and an optional system
// message, through the model's chat template, exactly as a chat request to the server.
absl::StatusOr<std::vector<int32_t>> PromptIds(const GenerateFlags& f, const std::string& path,
                                               const tokenizer::Tokenizer& tok) {
  if (!f.chat) return tok.Encode(f.prompt, /*add_special=*/true);
  STRATA_ASSIGN_OR_RETURN(const chat::ChatTemplates templates, chat::LoadChatTemplates(path));
  boost::json::array messages;
  if (!f.system.empty()) messages.push_back({{"role", "system"}, {"content", f.system}});
  messages.push_back({{"role", "user"}, {"content", f.prompt}});
  STRATA_ASSIGN_OR_RETURN(chat::ChatPrompt prompt,
                          chat::EncodeChat(templates, tok, messages, nullptr, path));
  STRATA_LOG_DEBUG("chat prompt: {}", prompt.text);
  return std::move(prompt.ids);
}

void RunGenerate(const GenerateFlags& f) {
  CheckDeviceOrExit(f.device, f.kv_dtype);  // before the default model is written or anything is loaded
  const std::string path = ResolveModelPath(f.model);
  auto tokenizer = tokenizer::LoadTokenizer(path);
  ExitIfError(tokenizer.status());
  auto prompt = PromptIds(f, path, **tokenizer);
  ExitIfError(prompt.status());

  std::unique_ptr<LocalExecutor> executor =
      LoadLocalOrExit(path, f.threads, f.dtype, static_cast<int64_t>(prompt->size()) + f.max_new_tokens,
                      f.device, f.kv_dtype, f.gpu);
  const ModelConfig& config = executor->config();
  STRATA_LOG_INFO("{}: {} layers, {:.1f} MB of weights, {} prompt tokens", config.architecture,
                  config.num_layers, executor->weight_bytes() / 1e6, prompt->size());

  engine::BatchGenerateOptions options;
  options.max_new_tokens = f.max_new_tokens;
  options.stop_at_eos = !f.ignore_eos;
  options.sampling.temperature = f.temperature;
  options.sampling.top_p = f.top_p;
  options.sampling.top_k = f.top_k;
  options.sampling.min_p = f.min_p;
  options.sampling.seed = f.seed;
  tokenizer::IncrementalDetokenizer detok(**tokenizer, /*skip_special=*/true, *prompt);
  // The prompt is echoed with the first token, so a request that fails prints only the error.
  bool echoed = f.chat;
  options.on_token = [&](size_t, int32_t token) {
    if (!echoed) {
      std::fputs(f.prompt.c_str(), stdout);
      echoed = true;
    }
    auto text = detok.Add(token);
    if (text.ok()) std::fputs(text->c_str(), stdout);
    std::fflush(stdout);
    return true;
  };
  auto result = engine::GenerateBatch(*executor, {*prompt}, options);
  ExitIfError(result.status());
  auto tail = detok.Finish();
  ExitIfError(tail.status());
  std::fputs(tail->c_str(), stdout);
  std::fputs("\n", stdout);
  const int64_t n = static_cast<int64_t>(result->sequences[0].tokens.size());
  STRATA_LOG_INFO("prompt: {} tokens in {:.3f} s ({:.1f} tok/s); decode: {} tokens in {:.3f} s "
                  "({:.2f} tok/s)",
                  prompt->size(), result->first_token_seconds,
                  prompt->size() / std::max(result->first_token_seconds, 1e-9), n - 1,
                  result->decode_seconds, (n - 1) / std::max(result->decode_seconds, 1e-9));
}

}  // namespace

void AddGenerateCommand(CLI::App& app) {
  auto flags = std::make_shared<GenerateFlags>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text from a prompt (offline, one process)");
  cmd->add_option("--model,-m", flags->model,
                  "Hugging Face model directory or .gguf file (default: the embedded random-weight "
                  "model, generated on first use)")
      ->envname("STRATA_MODEL");
  cmd->add_option("--prompt,-p", flags->prompt, "Prompt text")->envname("STRATA_PROMPT")->capture_default_str();
  cmd->add_option("-n,--max-tokens", flags->max_new_tokens, "Tokens to generate")
      ->envname("STRATA_MAX_TOKENS")->check(CLI::Range(int64_t{1}, int64_t{1} << 20))->capture_default_str();
  cmd->add_option("--temperature", flags->temperature, "Sampling temperature (0: greedy)")
      ->envname("STRATA_TEMPERATURE")->check(CLI::Range(0.0f, 100.0f))->capture_default_str();
  cmd->add_option("--top-p", flags->top_p, "Nucleus sampling mass")
      ->envname("STRATA_TOP_P")->check(CLI::Range(0.0f, 1.0f))->capture_default_str();
  cmd->add_option("--top-k", flags->top_k, "Keep the k most likely tokens (0: off)")
      ->envname("STRATA_TOP_K")->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd->add_option("--min-p", flags->min_p, "Drop tokens below min_p x the top probability")
      ->envname("STRATA_MIN_P")->check(CLI::Range(0.0f, 1.0f))->capture_default_str();
  cmd->add_option("--seed", flags->seed, "Sampling seed")->envname("STRATA_SEED")->capture_default_str();
  cmd->add_option("--threads,-t", flags->threads, "CPU threads (0: all)")
      ->envname("STRATA_THREADS")->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd->add_option("--device", flags->device, "Device: cpu, or cuda[:N]")
      ->envname("STRATA_DEVICE")->capture_default_str();
  cmd->add_option("--kv-dtype", flags->kv_dtype, kKvDTypeHelp)->envname("STRATA_KV_DTYPE");
  AddGpuFlags(cmd, &flags->gpu);
  cmd->add_option("--dtype", flags->dtype,
                  "Convert weights on load: f32, f16, bf16, q8_0 or q4_0 (default: as stored)")
      ->envname("STRATA_DTYPE");
  cmd->add_flag("--ignore-eos", flags->ignore_eos, "Keep generating past end-of-sequence")
      ->envname("STRATA_IGNORE_EOS");
  cmd->add_flag("--chat", flags->chat,
                "Send the prompt as a user message through the model's chat template")
      ->envname("STRATA_CHAT");
  cmd->add_option("--system", flags->system, "System message (with --chat)")
      ->envname("STRATA_SYSTEM");
  cmd->callback([flags] { RunGenerate(*flags); });
}

}  // namespace strata::cli
