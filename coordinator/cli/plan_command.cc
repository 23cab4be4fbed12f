// `strata plan`: how a model would be sharded over a cluster, without loading any weights.
#include <cstdio>

#include "coordinator/cli/commands.h"
#include "coordinator/cluster/shard_planner.h"

namespace strata::cli {
namespace {

struct PlanFlags {
  std::string model;
  int64_t gpus_per_node = 1;
  int64_t nodes = 1;
  std::string memory = "80GiB";
  double utilization = 0.90;
  int64_t max_model_len = 0;
  std::string device = "cuda";
  std::string kv_dtype;  // empty: the device's (bf16 on GPUs, f32 on CPUs)
  std::string dtype;     // conversion on load; empty: the device's (bf16 on GPUs) or as stored
  bool expert_parallel = false;
};

void RunPlan(const PlanFlags& f) {
  absl::StatusOr<ModelConfig> config = LoadModelConfig(f.model);
  ExitIfError(config.status());
  absl::StatusOr<int64_t> memory = ParseByteSize(f.memory);
  ExitIfError(memory.status());
  ClusterSpec cluster;
  cluster.nodes = f.nodes;
  cluster.devices_per_node = f.gpus_per_node;
  cluster.memory_per_device = *memory;
  cluster.memory_utilization = f.utilization;
  // What the device's workers hold, as the coordinator plans them: a GPU keeps every matrix
  // in bf16 (a q4_0 checkpoint takes 3.5x its file size there) and its KV cache in bf16; a
  // CPU keeps weights as stored (or as converted) and its KV cache in f32.
  absl::StatusOr<DeviceSpec> device = ParseDeviceSpec(f.device);
  ExitIfError(device.status());
  const bool gpu = device->kind == DeviceKind::kCuda;
  absl::StatusOr<DType> kv = ParseDType(f.kv_dtype.empty() ? (gpu ? "bf16" : "f32") : f.kv_dtype);
  ExitIfError(kv.status());
  const bool kept = gpu ? (*kv == DType::kBF16 || *kv == DType::kF8E4M3) : *kv == DType::kF32;
  if (!kept) {  // as the workers' backends would refuse it
    ExitIfError(absl::InvalidArgumentError(absl::StrCat(
        "--kv-dtype ", DTypeName(*kv), ": ", gpu ? "GPU" : "CPU", " workers keep their KV cache in ",
        gpu ? "bf16 or f8_e4m3" : "f32")));
  }
  cluster.kv_dtype = *kv;
  PlanOptions options;
  options.min_kv_tokens = f.max_model_len;
  FootprintOptions footprint;
  footprint.expert_parallel = f.expert_parallel;
  if (!f.dtype.empty()) {
    absl::StatusOr<DType> dtype = ParseWeightDType(f.dtype);
    ExitIfError(dtype.status());
    if (gpu && *dtype != DType::kBF16) {
      ExitIfError(absl::InvalidArgumentError(absl::StrCat(
          "--dtype ", f.dtype, " on --device cuda: GPU workers keep every matrix in bf16")));
    }
    footprint.weight_dtype = *dtype;
  } else if (gpu) {
    footprint.weight_dtype = DType::kBF16;
  }
  absl::StatusOr<ShardPlan> plan = PlanModel(f.model, cluster, options, footprint);
  ExitIfError(plan.status());
  std::fputs(plan->Explain(*config, cluster).c_str(), stdout);
  std::printf("device: %s; weights held as %s, KV cache as %s\n", DeviceKindName(device->kind),
              footprint.weight_dtype ? DTypeName(*footprint.weight_dtype) : "stored",
              DTypeName(cluster.kv_dtype));
}

}  // namespace

void AddPlanCommand(CLI::App& app) {
  auto flags = std::make_shared<PlanFlags>();
  CLI::App* cmd = app.add_subcommand(
      "plan", "Print how a model would be sharded over a cluster (loads no weights)");
  cmd->add_option("--model,-m", flags->model, "Hugging Face model directory (config.json) or .gguf")
      ->envname("STRATA_MODEL")->required();
  cmd->add_option("--gpus-per-node", flags->gpus_per_node, "Devices per node (tensor parallel)")
      ->envname("STRATA_GPUS_PER_NODE")->check(CLI::Range(int64_t{1}, int64_t{64}))->capture_default_str();
  cmd->add_option("--nodes", flags->nodes, "Nodes (pipeline stages)")
      ->envname("STRATA_NODES")->check(CLI::Range(int64_t{1}, int64_t{256}))->capture_default_str();
  cmd->add_option("--memory", flags->memory, "Memory per device, e.g. 80GiB")
      ->envname("STRATA_DEVICE_MEMORY")->capture_default_str();
  cmd->add_option("--memory-utilization", flags->utilization,
                  "Share of device memory for weights, KV cache and activations")
      ->envname("STRATA_MEMORY_UTILIZATION")->check(CLI::Range(0.05, 1.0))->capture_default_str();
  cmd->add_option("--max-model-len", flags->max_model_len,
                  "KV cache must hold one sequence this long (default: the model's context)")
      ->envname("STRATA_MAX_MODEL_LEN")->check(CLI::NonNegativeNumber);
  cmd->add_option("--device", flags->device, "Kind of worker device: cuda (weights and KV cache "
                  "in bf16) or cpu (weights as stored, KV cache in f32)")
      ->envname("STRATA_DEVICE")->capture_default_str();
  cmd->add_option("--dtype", flags->dtype, "Convert weights on load (f32, f16, bf16, q8_0, q4_0; "
                  "bf16 only on GPUs); default: bf16 on GPUs, as stored on CPUs")
      ->envname("STRATA_DTYPE");
  cmd->add_option("--kv-dtype", flags->kv_dtype, "Element type of the KV cache (default: bf16 "
                  "on GPUs, f32 on CPU workers)")->envname("STRATA_KV_DTYPE");
  cmd->add_flag("--expert-parallel", flags->expert_parallel,
                "Mixture-of-experts: spread whole experts across each node's devices instead of "
                "splitting every expert")->envname("STRATA_EXPERT_PARALLEL");
  cmd->callback([flags] { RunPlan(*flags); });
}

}  // namespace strata::cli
