#include "libs/scriptrun/script.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace trainmesh::scriptrun {
namespace {

constexpr size_t kMaxLine = 1 << 20;

struct Pipe {
  int fd = -1;
  std::string buffer;
  bool open = true;
};

void Flush(Pipe& p, Stream s, const std::function<void(Stream, absl::string_view)>& on_line,
           bool all) {
  size_t start = 0;
  while (true) {
    const size_t nl = p.buffer.find('\n', start);
    if (nl == std::string::npos) break;
    on_line(s, absl::string_view(p.buffer).substr(start, nl - start));
    start = nl + 1;
  }
  p.buffer.erase(0, start);
  while (p.buffer.size() > kMaxLine || (all && !p.buffer.empty())) {
    const size_t n = std::min(p.buffer.size(), kMaxLine);
    on_line(s, absl::string_view(p.buffer).substr(0, n));
    p.buffer.erase(0, n);
  }
}

}  // namespace

absl::StatusOr<ScriptResult> Run(const ScriptOptions& options,
                                 const std::function<void(Stream, absl::string_view)>& on_line,
                                 const std::atomic<int>* stop) {
  int out[2], err[2], report[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0 || pipe2(report, O_CLOEXEC) != 0) {
    return absl::UnavailableError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  // Everything the child needs, prepared before fork.
  uid_t uid = 0;
  gid_t gid = 0;
  const bool drop = geteuid() == 0 && !options.user.empty();
  if (drop) {
    passwd* pw = getpwnam(options.user.c_str());
    if (pw == nullptr) return absl::FailedPreconditionError(absl::StrCat("no user ", options.user));
    uid = pw->pw_uid;
    gid = pw->pw_gid;
    if (chown(options.workdir.c_str(), uid, gid) != 0) {
      return absl::UnavailableError(absl::StrCat("chown workdir: ", std::strerror(errno)));
    }
  }
  std::vector<std::string> argv_s = {options.command};
  argv_s.insert(argv_s.end(), options.args.begin(), options.args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s;
  for (const auto& [k, v] : options.env) env_s.push_back(absl::StrCat(k, "=", v));
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);

  const pid_t pid = fork();
  if (pid < 0) return absl::UnavailableError(absl::StrCat("fork: ", std::strerror(errno)));
  if (pid == 0) {
    // Child: only async-signal-safe calls from here on.
    setsid();
    dup2(out[1], STDOUT_FILENO);
    dup2(err[1], STDERR_FILENO);
    const int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, STDIN_FILENO);
    auto fail = [&](int code) {
      (void)!write(report[1], &code, sizeof(code));
      _exit(127);
    };
    if (chdir(options.workdir.c_str()) != 0) fail(errno);
    rlimit as{static_cast<rlim_t>(options.memory_bytes), static_cast<rlim_t>(options.memory_bytes)};
    rlimit fsize{static_cast<rlim_t>(options.max_file_bytes), static_cast<rlim_t>(options.max_file_bytes)};
    rlimit core{0, 0};
    setrlimit(RLIMIT_AS, &as);
    setrlimit(RLIMIT_FSIZE, &fsize);
    setrlimit(RLIMIT_CORE, &core);
    if (drop) {
      if (setgroups(0, nullptr) != 0 || setgid(gid) != 0 || setuid(uid) != 0) fail(errno);
    }
    // execvpe searches PATH of the given environment.
    execvpe(argv[0], argv.data(), envp.data());
    fail(errno);
  }
  close(out[1]);
  close(err[1]);
  close(report[1]);
  int exec_errno = 0;
  const ssize_t got = read(report[0], &exec_errno, sizeof(exec_errno));
  close(report[0]);
  if (got == static_cast<ssize_t>(sizeof(exec_errno))) {
    close(out[0]);
    close(err[0]);
    waitpid(pid, nullptr, 0);
    return absl::InvalidArgumentError(absl::StrCat("cannot run ", options.command, ": ",
                                                   std::strerror(exec_errno)));
  }

  ScriptResult result;
  Pipe pipes[2] = {{out[0]}, {err[0]}};
  const absl::Time deadline =
      options.timeout == absl::InfiniteDuration() ? absl::InfiniteFuture() : absl::Now() + options.timeout;
  absl::Time killed_at = absl::InfiniteFuture();
  auto kill_group = [&](int sig) { kill(-pid, sig); };
  while (pipes[0].open || pipes[1].open) {
    if (killed_at == absl::InfiniteFuture()) {
      if (stop != nullptr && stop->load() != 0) {
        result.stopped = true;
        kill_group(SIGTERM);
        killed_at = absl::Now();
      } else if (absl::Now() >= deadline) {
        result.timed_out = true;
        kill_group(SIGTERM);
        killed_at = absl::Now();
      }
    } else if (absl::Now() - killed_at > options.kill_grace) {
      kill_group(SIGKILL);
    }
    pollfd fds[2];
    int n = 0;
    int which[2];
    for (int i = 0; i < 2; ++i) {
      if (pipes[i].open) {
        fds[n] = {pipes[i].fd, POLLIN, 0};
        which[n++] = i;
      }
    }
    if (poll(fds, n, 100) < 0 && errno != EINTR) break;
    for (int k = 0; k < n; ++k) {
      if ((fds[k].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      Pipe& p = pipes[which[k]];
      char buf[65536];
      const ssize_t r = read(p.fd, buf, sizeof(buf));
      if (r <= 0) {
        p.open = false;
        close(p.fd);
        Flush(p, which[k] == 0 ? Stream::kStdout : Stream::kStderr, on_line, /*all=*/true);
        continue;
      }
      p.buffer.append(buf, static_cast<size_t>(r));
      Flush(p, which[k] == 0 ? Stream::kStdout : Stream::kStderr, on_line, /*all=*/false);
    }
  }
  // The leader exited and closed its output; make sure the group is gone too.
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  kill_group(SIGKILL);
  if (WIFEXITED(wstatus)) result.exit_code = WEXITSTATUS(wstatus);
  if (WIFSIGNALED(wstatus)) result.signal = WTERMSIG(wstatus);
  return result;
}

}  // namespace trainmesh::scriptrun
