#include "services/common/service_main.h"

#include <cstdio>
#include <cstdlib>

#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "libs/log/log.h"
#include "libs/tls/tls.h"
#include "services/common/config.h"

ABSL_FLAG(std::string, listen, "0.0.0.0:0", "host:port the gRPC server listens on.");
ABSL_FLAG(absl::Duration, drain_timeout, absl::Seconds(20),
          "On SIGTERM, how long in-flight RPCs get to finish.");
ABSL_FLAG(std::string, metrics_listen, "",
          "host:port of the HTTP endpoint serving Prometheus metrics at /metrics; empty: none.");
ABSL_FLAG(bool, rpc_metrics, true,
          "Count and time every RPC for /metrics (turned off only to measure what it costs).");
ABSL_FLAG(int, max_message_bytes, 16 << 20, "Largest gRPC message accepted.");
ABSL_FLAG(int, max_streams_per_user, 100,
          "Server streams one user may hold open on this replica (watches, live metrics and logs, downloads).");
ABSL_FLAG(absl::Duration, stream_recheck, absl::Seconds(30),
          "How often an open stream's credential is checked again (a revoked key ends its streams).");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate chain this process's gRPC servers present (TLS); empty: plaintext.");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert (a file: never put key material on a command line).");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM CA certificates this process trusts when it calls other services (TLS); empty: plaintext.");
ABSL_FLAG(std::string, log_level, "info", "Lowest level logged: debug, info, warning, error.");

namespace trainmesh::service {

server::ServerOptions ServerOptionsFromFlags() {
  server::ServerOptions options;
  options.address = absl::GetFlag(FLAGS_listen);
  options.drain_timeout = absl::GetFlag(FLAGS_drain_timeout);
  options.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  options.metrics_address = absl::GetFlag(FLAGS_metrics_listen);
  options.rpc_metrics = absl::GetFlag(FLAGS_rpc_metrics);
  return options;
}

server::StreamGuards::Options StreamGuardOptionsFromFlags() {
  return {.max_per_user = absl::GetFlag(FLAGS_max_streams_per_user), .recheck = absl::GetFlag(FLAGS_stream_recheck)};
}

std::vector<char*> StartProcess(int argc, char** argv, const std::string& service,
                                const std::string& description) {
  server::BlockTerminationSignals();
  // A secret on a command line is readable by every user of the machine
  // (/proc/PID/cmdline, ps): keys come from the environment or a file.
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg(argv[i]);
    if (!absl::ConsumePrefix(&arg, "--")) continue;
    arg = arg.substr(0, arg.find('='));
    if (absl::EndsWith(arg, "api_key") || arg == "page_token_secret") {
      std::fprintf(stderr,
                   "%s: --%s must not be given on the command line (anyone on the machine can read it); "
                   "set TRAINMESH_%s in the environment%s\n",
                   service.c_str(), std::string(arg).c_str(), absl::AsciiStrToUpper(arg).c_str(),
                   arg == "agent_api_key" ? " or use --agent_api_key_file" : "");
      std::exit(2);
    }
  }
  std::vector<char*> args =
      config::ParseFlags(argc, argv, description + "\nEvery flag can also be set as TRAINMESH_<FLAG_NAME>.");
  log::Init(service, absl::GetFlag(FLAGS_log_level));
  const tls::TlsFiles files{.ca_file = absl::GetFlag(FLAGS_tls_ca),
                           .cert_file = absl::GetFlag(FLAGS_tls_cert),
                           .key_file = absl::GetFlag(FLAGS_tls_key)};
  if (absl::Status s = tls::Configure(files); !s.ok()) server::Fail("bad TLS configuration", s);
  TM_LOG(Info, "transport")
      .With("serves", files.cert_file.empty() ? "plaintext" : "TLS")
      .With("calls", files.ca_file.empty() ? "plaintext" : "TLS");
  return args;
}

}  // namespace trainmesh::service
