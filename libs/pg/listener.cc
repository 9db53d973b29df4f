#include "libs/pg/listener.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include "libs/log/log.h"
#include "libs/pg/errors.h"
#include "pqxx/pqxx"

namespace trainmesh::pg {
namespace {

class Receiver : public pqxx::notification_receiver {
 public:
  Receiver(pqxx::connection& conn, const std::string& channel, const Listener::NotifyFn& fn)
      : pqxx::notification_receiver(conn, channel), fn_(fn) {}
  void operator()(const std::string& payload, int /*backend_pid*/) override {
    fn_(channel(), payload);
  }

 private:
  const Listener::NotifyFn& fn_;
};

// Without traffic a dead peer goes unnoticed; ping this often.
constexpr absl::Duration kPingInterval = absl::Seconds(15);

}  // namespace

Listener::Listener(std::string dsn, std::vector<std::string> channels, NotifyFn on_notify,
                   std::function<void()> on_connected)
    : dsn_(std::move(dsn)),
      channels_(std::move(channels)),
      on_notify_(std::move(on_notify)),
      on_connected_(std::move(on_connected)),
      stop_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

Listener::~Listener() {
  Stop();
  close(stop_fd_);
}

void Listener::Start() { thread_ = std::thread([this] { Run(); }); }

void Listener::Stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  (void)!write(stop_fd_, &one, sizeof(one));
  thread_.join();
}

bool Listener::WaitUntilListening(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&listening_), timeout);
}

bool Listener::WaitReadable(int fd, absl::Duration timeout, bool* readable) {
  pollfd fds[2] = {{stop_fd_, POLLIN, 0}, {fd, POLLIN, 0}};
  const int n = fd >= 0 ? 2 : 1;
  const int ms = static_cast<int>(absl::ToInt64Milliseconds(timeout));
  int rc = poll(fds, n, ms);
  if (rc > 0 && (fds[0].revents & POLLIN) != 0) return false;
  *readable = rc > 0 && n == 2 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
  return true;
}

bool Listener::Session() {
  pqxx::connection conn(dsn_);
  std::vector<std::unique_ptr<Receiver>> receivers;
  for (const std::string& channel : channels_) {
    receivers.push_back(std::make_unique<Receiver>(conn, channel, on_notify_));
  }
  {
    absl::MutexLock lock(&mu_);
    listening_ = true;
  }
  TM_LOG(Debug, "listening").With("channels", static_cast<int64_t>(channels_.size()));
  if (on_connected_) on_connected_();
  absl::Time last_traffic = absl::Now();
  while (true) {
    bool readable = false;
    if (!WaitReadable(conn.sock(), kPingInterval, &readable)) return false;
    if (readable) {
      conn.get_notifs();
      last_traffic = absl::Now();
    } else if (absl::Now() - last_traffic >= kPingInterval) {
      pqxx::nontransaction(conn).exec("SELECT 1");
      conn.get_notifs();
      last_traffic = absl::Now();
    }
    if (!conn.is_open()) throw pqxx::broken_connection("listener connection closed");
  }
}

void Listener::Run() {
  absl::Duration backoff = absl::Milliseconds(50);
  while (true) {
    try {
      if (!Session()) break;
    } catch (...) {
      absl::Status status = StatusFromCurrentException();
      TM_LOG(Warning, "notification listener disconnected; reconnecting")
          .With("error", status)
          .With("backoff_ms", absl::ToInt64Milliseconds(backoff));
    }
    {
      absl::MutexLock lock(&mu_);
      // A session that got as far as listening starts the backoff afresh.
      if (listening_) backoff = absl::Milliseconds(50);
      listening_ = false;
    }
    bool unused = false;
    if (!WaitReadable(-1, backoff, &unused)) break;
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
  absl::MutexLock lock(&mu_);
  listening_ = false;
}

}  // namespace trainmesh::pg
