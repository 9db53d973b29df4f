// What every binary's main shares: the start of the process and the flags
// every service has. Libraries take options structs; only mains (and this
// folder, which they share) define flags, as Abseil advises.
//
// Flags: --listen, --metrics_listen, --drain_timeout, --max_message_bytes,
// --rpc_metrics, --max_streams_per_user, --stream_recheck, --tls_cert,
// --tls_key, --tls_ca, --log_level.
#pragma once

#include <string>
#include <vector>

#include "libs/server/grpc_server.h"
#include "libs/server/stream_guard.h"

namespace trainmesh::service {

// Blocks the termination signals, parses the flags (each also settable as
// TRAINMESH_<FLAG>; `description` heads --help), starts JSON-lines logging as
// `service` and configures TLS. Returns the positional arguments (argv[0]
// first). Exits 2 when a secret is given on the command line.
std::vector<char*> StartProcess(int argc, char** argv, const std::string& service,
                                const std::string& description);

// --listen, --metrics_listen, --drain_timeout, --max_message_bytes,
// --rpc_metrics.
server::ServerOptions ServerOptionsFromFlags();

// --max_streams_per_user, --stream_recheck (services with server streams).
server::StreamGuards::Options StreamGuardOptionsFromFlags();

}  // namespace trainmesh::service
