// The trainctl commands, one file per group (jobs.cc, experiments.cc,
// logs.cc, admin.cc); trainctl.cc dispatches to them.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "tools/cli/client.h"

namespace trainmesh::cli {

// jobs.cc
grpc::Status FollowEvents(Client& client, const std::string& id, int64_t after_seq,
                          const std::function<void(const JobEvent&)>& on_event,
                          const std::function<void(const grpc::Status&, int64_t)>& on_lost, Job::State* final);
int Follow(Client& client, const std::string& id, int64_t after_seq);
std::optional<int> JobFromFlags(const Args& args, Job* job);
int Submit(Client& client, const Args& args);
int List(Client& client, const Args& args);
int MarkRead(Client& client, const Args& args);
int Notifications(Client& client, const Args& args);
int Get(Client& client, const std::string& id);
int Cancel(Client& client, const std::string& id, const Args& args);
int Retry(Client& client, const std::string& id, const Args& args);
int DownloadOne(Client& client, const std::string& id, const std::string& name, const std::string& dir,
                bool quiet_if_missing);
int Download(Client& client, const std::string& id, const Args& args);

// experiments.cc
uint64_t Fnv1a(absl::string_view bytes);
int Sweep(Client& client, const Args& args);
bool LowerIsBetter(const std::string& metric);
int Compare(Client& client, const Args& args);

// logs.cc
void PrintLogLine(const trainmesh::v1::LogLine& line);
int64_t PrintLogsAfter(Client& client, const std::string& id, int64_t after_seq, bool* header, bool* ok);
int FollowLogs(Client& client, const std::string& id, int64_t after_seq, int64_t after_event);
int Logs(Client& client, const std::string& id, const Args& args);
int Metrics(Client& client, const std::string& id, const Args& args);

// admin.cc
int Agents(Client& client, const Args& args);
int Recipes(Client& client, const Args& args);
int Health(Client& client);
std::string ReadPassword(const Args& args);
int Login(Client& client, const Args& args);
int Logout();
int WhoAmI(Client& client);
int Users(Client& client, const Args& args);
int Keys(Client& client, const Args& args);

}  // namespace trainmesh::cli
