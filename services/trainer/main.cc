// The trainer agent binary: one per machine (or GPU pod). It serves only gRPC
// health and reflection; its work comes from the scheduler.
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "libs/log/log.h"
#include "libs/server/grpc_server.h"
#include "libs/telemetry/metrics.h"
#include "libs/tls/tls.h"
#include "libs/training/training.h"
#include "services/trainer/agent.h"
#include "services/common/service_main.h"

ABSL_FLAG(std::string, scheduler_endpoint, "127.0.0.1:7003", "gRPC address of the scheduler.");
ABSL_FLAG(std::string, metrics_endpoint, "127.0.0.1:7004", "gRPC address of the metrics service.");
ABSL_FLAG(std::string, agent_api_key, "",
          "API key with scope \"agent\"; jobs run as the key's owner may run them. From the environment "
          "(TRAINMESH_AGENT_API_KEY) or --agent_api_key_file, never the command line. Required.");
ABSL_FLAG(std::string, agent_api_key_file, "", "A file holding the agent's API key (e.g. a mounted secret).");
ABSL_FLAG(std::string, name, "", "Name shown in agent lists (default: the host name).");
ABSL_FLAG(std::string, state_file, "", "Keeps the agent id across restarts (empty: none).");
ABSL_FLAG(int, slots, 1, "Jobs run at once.");
ABSL_FLAG(std::string, device, "auto", "auto (CUDA when available, else CPU), cpu, cuda or cuda:N.");
ABSL_FLAG(int, threads, 0, "CPU threads per job (0: the cores divided among the slots).");
ABSL_FLAG(bool, shared_pool, false, "Also take shared-pool jobs of other users.");
ABSL_FLAG(bool, allow_scripts, true, "Run `script` jobs of the agent's owner.");
ABSL_FLAG(bool, allow_shared_scripts, false,
          "Run `script` jobs of other users from the shared pool (admins only enable this).");
ABSL_FLAG(std::string, data_root, "", "Directory file:// dataset URLs are resolved under.");
ABSL_FLAG(std::string, artifact_root, "", "Artifact store (shared with the jobs service). Required.");
ABSL_FLAG(std::string, cache_dir, "", "Where http(s) datasets are downloaded (default: under the work root).");
ABSL_FLAG(int64_t, max_download_bytes, int64_t{2} << 30, "Largest http(s) dataset fetched.");
ABSL_FLAG(std::vector<std::string>, dataset_allow_hosts, {},
          "Host names http(s) datasets may be fetched from whatever they resolve to (by default "
          "loopback, private, link-local and other inward addresses are refused).");
ABSL_FLAG(std::vector<std::string>, dataset_allow_cidrs, {},
          "Inward address blocks http(s) datasets may be fetched from, e.g. 10.0.0.0/8,fd00::/8.");
ABSL_FLAG(std::string, work_root, "", "Working directories of script jobs (default: a temp dir).");
ABSL_FLAG(std::string, script_user, "nobody", "Unprivileged user scripts run as when the agent is root.");
ABSL_FLAG(int64_t, script_memory_bytes, int64_t{16} << 30,
          "Address-space limit of a script (per process).");
ABSL_FLAG(bool, sandbox, true,
          "Run script jobs in a bubblewrap sandbox: read-only system folders, only the job's "
          "folders writable, private /tmp and /proc, no network, nothing of the agent in sight.");
ABSL_FLAG(bool, unsafe_scripts_without_sandbox, false,
          "Run script jobs even where the sandbox does not work (or with --sandbox=false): "
          "unconfined, they see this machine's files and network. Off, such an agent refuses "
          "script jobs.");
ABSL_FLAG(bool, allow_script_network, false,
          "Let script jobs that ask for it (hyperparameter network=true) reach the network; "
          "others never do.");
ABSL_FLAG(int, script_max_processes, 256, "Processes and threads a script job may have at once.");
ABSL_FLAG(int, script_max_open_files, 1024, "Open files per process of a script job.");
ABSL_FLAG(int64_t, script_cpu_seconds, 0,
          "CPU seconds per process of a script job (0: no limit; timeout_seconds bounds the "
          "wall time).");
ABSL_FLAG(int64_t, script_max_output_bytes, int64_t{16} << 30,
          "Bytes a script job may leave in its working and output folders; past it the job is "
          "stopped.");
ABSL_FLAG(absl::Duration, acquire_wait, absl::Seconds(30), "Long-poll length of AcquireJob.");
ABSL_FLAG(absl::Duration, checkpoint_interval, absl::Minutes(5),
          "Checkpoint at least this often (also every checkpoint_every steps).");

int main(int argc, char** argv) {
  using namespace trainmesh;
  service::StartProcess(argc, argv, "trainer",
                       "trainmesh trainer: an agent that claims jobs and trains them with LibTorch.");
  trainer::AgentOptions options;
  options.api_key = absl::GetFlag(FLAGS_agent_api_key);
  if (const std::string file = absl::GetFlag(FLAGS_agent_api_key_file); !file.empty()) {
    std::ifstream in(file);
    std::string key;
    if (!in || !std::getline(in, key) || absl::StripAsciiWhitespace(key).empty()) {
      TM_LOG(Error, "bad configuration").With("error", "cannot read an API key from --agent_api_key_file");
      return 2;
    }
    options.api_key = std::string(absl::StripAsciiWhitespace(key));
  }
  options.artifact_root = absl::GetFlag(FLAGS_artifact_root);
  if (options.api_key.empty() || options.artifact_root.empty()) {
    TM_LOG(Error, "bad configuration").With("error", "--agent_api_key and --artifact_root are required");
    return 1;
  }
  options.name = absl::GetFlag(FLAGS_name);
  if (options.name.empty()) {
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    options.name = host;
  }
  options.state_file = absl::GetFlag(FLAGS_state_file);
  options.slots = std::max(1, absl::GetFlag(FLAGS_slots));
  options.device = absl::GetFlag(FLAGS_device);
  options.threads = absl::GetFlag(FLAGS_threads);
  if (options.threads <= 0) {
    options.threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / options.slots);
  }
  options.shared_pool = absl::GetFlag(FLAGS_shared_pool);
  options.allow_scripts = absl::GetFlag(FLAGS_allow_scripts);
  options.allow_shared_scripts = absl::GetFlag(FLAGS_allow_shared_scripts);
  options.work_root = absl::GetFlag(FLAGS_work_root);
  if (options.work_root.empty()) {
    options.work_root = (std::filesystem::temp_directory_path() / absl::StrCat("trainmesh-work-", getpid())).string();
  }
  options.datasets.data_root = absl::GetFlag(FLAGS_data_root);
  options.datasets.cache_dir = absl::GetFlag(FLAGS_cache_dir);
  if (options.datasets.cache_dir.empty()) options.datasets.cache_dir = options.work_root + "/datasets";
  options.datasets.max_download_bytes = absl::GetFlag(FLAGS_max_download_bytes);
  auto address_policy = netpolicy::ParsePolicy(absl::GetFlag(FLAGS_dataset_allow_hosts),
                                               absl::GetFlag(FLAGS_dataset_allow_cidrs));
  if (!address_policy.ok()) {
    TM_LOG(Error, "bad configuration").With("error", address_policy.status());
    return 1;
  }
  options.datasets.address_policy = *std::move(address_policy);
  options.datasets.address_policy.allow_hint =
      "an operator can allow it with --dataset_allow_cidrs or --dataset_allow_hosts";
  options.script_user = absl::GetFlag(FLAGS_script_user);
  options.sandbox = absl::GetFlag(FLAGS_sandbox);
  options.unsafe_scripts_without_sandbox = absl::GetFlag(FLAGS_unsafe_scripts_without_sandbox);
  options.allow_script_network = absl::GetFlag(FLAGS_allow_script_network);
  options.script_limits.memory_bytes = absl::GetFlag(FLAGS_script_memory_bytes);
  options.script_limits.max_processes = absl::GetFlag(FLAGS_script_max_processes);
  options.script_limits.max_open_files = absl::GetFlag(FLAGS_script_max_open_files);
  options.script_limits.cpu_seconds = absl::GetFlag(FLAGS_script_cpu_seconds);
  options.script_limits.max_output_bytes = absl::GetFlag(FLAGS_script_max_output_bytes);
  options.acquire_wait = absl::GetFlag(FLAGS_acquire_wait);
  options.checkpoint_interval = absl::GetFlag(FLAGS_checkpoint_interval);
  std::filesystem::create_directories(options.work_root);

  // LibTorch on the reference BLAS is ~20x slower: say so loudly.
  const training::DeviceInfo device = training::ProbeDevice(options.device);
  const double gflops = training::MatmulGflops(options.threads);
  {
    // The line is written when it goes out of scope: now, not at exit.
    auto line = TM_LOG(Info, "compute");
    line.With("device", device.device_type).With("threads", options.threads).With("matmul_gflops", gflops);
    if (device.device_type == "cuda") line.With("gpus", device.gpu_count).With("gpu", device.gpu_model);
  }
  if (gflops < 20) {
    TM_LOG(Warning, "matrix multiply is slow: LibTorch is probably on the reference BLAS; "
                    "install libopenblas0-openmp")
        .With("matmul_gflops", gflops);
  }

  auto channel = [](const std::string& endpoint) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
    args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    // Back within a couple of seconds of a scheduler restart, well inside a
    // lease: gRPC's default backoff grows to two minutes.
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 250);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
    return tls::Channel(endpoint, args);
  };
  trainer::Agent agent(options, trainmesh::v1::SchedulerService::NewStub(channel(absl::GetFlag(FLAGS_scheduler_endpoint))),
                       trainmesh::v1::MetricsService::NewStub(channel(absl::GetFlag(FLAGS_metrics_endpoint))));

  telemetry::Registry::Registration metrics = telemetry::Registry::Default().AddCollector(
      [&agent, slots = options.slots](telemetry::Exposition& out) {
        out.Family("trainmesh_trainer_jobs_running", "Jobs this agent is training now.", "gauge");
        out.Sample("trainmesh_trainer_jobs_running", {}, agent.running());
        out.Family("trainmesh_trainer_slots", "Jobs this agent runs at once, at most.", "gauge");
        out.Sample("trainmesh_trainer_slots", {}, slots);
      });
  server::GrpcServer health(service::ServerOptionsFromFlags());
  if (absl::Status s = health.Start(); !s.ok()) {
    TM_LOG(Error, "cannot start").With("error", s);
    return 1;
  }
  absl::Status result;
  std::thread runner([&] {
    result = agent.Run();
    kill(getpid(), SIGTERM);  // wakes main when the agent stops by itself
  });
  const int signal = server::GrpcServer::WaitForTerminationSignal();
  TM_LOG(Info, "stopping: running jobs checkpoint and go back to the queue")
      .With("signal", signal)
      .With("running", agent.running());
  agent.Shutdown();
  runner.join();
  health.Shutdown();
  metrics.Reset();
  std::error_code ec;
  if (absl::GetFlag(FLAGS_work_root).empty()) std::filesystem::remove_all(options.work_root, ec);
  if (!result.ok()) {
    TM_LOG(Error, "agent stopped").With("error", result);
    return 1;
  }
  TM_LOG(Info, "bye");
  return 0;
}
