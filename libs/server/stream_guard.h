// What every long-lived server stream holds while it is open: one of its
// caller's stream slots (a per-user cap, so one user cannot hold a replica's
// streams), and an end when the credential that opened it lapses: at its
// expiry, or at the first periodic re-check that refuses it (a revoked API
// key, a deleted user). The stream then ends with UNAUTHENTICATED and the
// client must come back with a fresh credential.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "trainmesh/v1/auth.pb.h"

namespace trainmesh::server {

class StreamGuards {
 public:
  struct Options {
    // Open streams per user (subject) on this replica; 0: no cap.
    int max_per_user = 100;
    // How often an open stream's credential is checked again.
    absl::Duration recheck = absl::Seconds(30);
  };

  // Held by an open stream; destroying it gives the slot back and stops the
  // checks (waiting for one in progress).
  class Guard {
   public:
    ~Guard();
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;

   private:
    friend class StreamGuards;
    struct State;
    Guard(StreamGuards* guards, std::shared_ptr<State> state) : guards_(guards), state_(std::move(state)) {}
    StreamGuards* guards_;
    std::shared_ptr<State> state_;
  };

  explicit StreamGuards(Options options);
  ~StreamGuards();
  StreamGuards(const StreamGuards&) = delete;
  StreamGuards& operator=(const StreamGuards&) = delete;

  // A slot for `caller`'s stream, or RESOURCE_EXHAUSTED (with RetryInfo) when
  // the caller has max_per_user open here. `recheck()` authorizes the
  // caller's credential again (OK or why not); it runs on this object's
  // thread, never after the guard is destroyed. `end(status)` ends the stream
  // (once: at expiry, or when a re-check fails); it may run after the guard
  // is gone, so it must hold the stream weakly.
  absl::StatusOr<std::unique_ptr<Guard>> Open(const trainmesh::v1::Principal& caller,
                                              std::function<absl::Status()> recheck,
                                              std::function<void(absl::Status)> end);

  // Open for a stream object held weakly whose EndWith(absl::Status) ends it.
  template <typename Stream>
  absl::StatusOr<std::unique_ptr<Guard>> OpenFor(const trainmesh::v1::Principal& caller,
                                                 std::function<absl::Status()> recheck,
                                                 std::weak_ptr<Stream> stream) {
    return Open(caller, std::move(recheck), [stream = std::move(stream)](absl::Status why) {
      if (auto self = stream.lock()) self->EndWith(std::move(why));
    });
  }

  // Streams open now for `subject`.
  int open(const std::string& subject) const;

 private:
  void Run();
  void Close(const std::shared_ptr<Guard::State>& state);

  const Options options_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, int> open_ ABSL_GUARDED_BY(mu_);
  // Next check time -> stream (a multimap: many may be due at once).
  std::multimap<absl::Time, std::shared_ptr<Guard::State>> due_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace trainmesh::server
