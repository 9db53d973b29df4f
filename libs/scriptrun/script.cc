#include "libs/scriptrun/script.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "libs/scriptrun/bwrap.h"
#include "libs/scriptrun/outputs.h"

namespace trainmesh::scriptrun {
namespace {

constexpr size_t kMaxLine = 1 << 20;
// How often the bytes left in the writable directories are counted.
constexpr absl::Duration kUsageInterval = absl::Milliseconds(200);
// bwrap reports its own failures on stderr with this prefix, before the
// command runs.
constexpr absl::string_view kBwrapPrefix = "bwrap: ";
constexpr absl::string_view kBwrapExecFailed = "bwrap: execvp ";

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Reset(); }
  int get() const { return fd_; }
  void Reset(int fd = -1) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

struct Pipe {
  Fd read, write;
  absl::Status Open() {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
      return absl::UnavailableError(absl::StrCat("pipe: ", std::strerror(errno)));
    read.Reset(p[0]);
    write.Reset(p[1]);
    return absl::OkStatus();
  }
  // A socket pair instead, written with MSG_NOSIGNAL: the reader may be gone
  // (bwrap died) and a SIGPIPE would end the agent.
  absl::Status OpenSockets() {
    int p[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) != 0) {
      return absl::UnavailableError(absl::StrCat("socketpair: ", std::strerror(errno)));
    }
    read.Reset(p[0]);
    write.Reset(p[1]);
    return absl::OkStatus();
  }
};

struct Output {
  int fd = -1;
  std::string buffer;
  bool open = true;
};

void Flush(Output& p, Stream s, const std::function<void(Stream, absl::string_view)>& on_line,
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

struct Identity {
  uid_t uid = 0;
  gid_t gid = 0;
  bool drop = false;  // setuid to it in the child (we are root)
};

absl::StatusOr<Identity> Resolve(const SandboxOptions& o) {
  if (geteuid() != 0) return Identity{getuid(), getgid(), false};
  Identity id{0, 0, true};
  if (o.uid >= 0) {
    id.uid = static_cast<uid_t>(o.uid);
    id.gid = static_cast<gid_t>(o.gid >= 0 ? o.gid : o.uid);
  } else {
    if (o.user.empty())
      return absl::FailedPreconditionError("scripts never run as root: name a user to run them as");
    passwd pw;
    passwd* found = nullptr;
    std::string buf(16384, '\0');
    if (getpwnam_r(o.user.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat("no user ", o.user));
    }
    id.uid = pw.pw_uid;
    id.gid = pw.pw_gid;
  }
  if (id.uid == 0 || id.gid == 0) {
    // bwrap started by root maps the script to host root: it would read
    // /etc/shadow through any bound path.
    return absl::FailedPreconditionError("scripts never run as root (uid or gid 0)");
  }
  return id;
}

// Hands a fresh directory to the script's user: owned by it, private.
absl::Status HandOver(const std::string& dir, const Identity& id) {
  if (dir.empty()) return absl::OkStatus();
  Fd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (fd.get() < 0)
    return absl::UnavailableError(absl::StrCat("cannot open ", dir, ": ", std::strerror(errno)));
  if (id.drop && fchown(fd.get(), id.uid, id.gid) != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot hand ", dir, " to the script user: ", std::strerror(errno)));
  }
  if (fchmod(fd.get(), 0700) != 0)
    return absl::UnavailableError(absl::StrCat("chmod ", dir, ": ", std::strerror(errno)));
  return absl::OkStatus();
}

bool Inside(const std::string& path, const std::string& dir) {
  return path == dir ||
         (absl::StartsWith(path, dir) && path.size() > dir.size() && path[dir.size()] == '/');
}

int PidfdOpen(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }
int PidfdSignal(int pidfd, int sig) {
  return static_cast<int>(syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

// bwrap runs as the script's user and looks its bind sources up by path,
// so every folder above the job's directories would have to be searchable by
// that user (a work root under a 0700 folder is not). When the agent is root,
// it clones each of the job's paths as a detached mount (open_tree), and the
// child that becomes bwrap makes a mount namespace of its own (never seen by
// the host), mounts a small tmpfs on /tmp there and attaches the clones in
// it; bwrap binds from those.
constexpr char kStageDir[] = "/tmp";
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif

struct StagedPath {
  int tree = -1;       // open_tree(OPEN_TREE_CLONE) of the path
  std::string target;  // kStageDir/i
  bool dir = true;
};

bool HasCapSysAdmin() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capget, &header, data) != 0) return false;
  return (data[CAP_SYS_ADMIN / 32].effective & (1u << (CAP_SYS_ADMIN % 32))) != 0;
}

// The inode of a process's pid namespace; 0 when it cannot be read.
ino_t PidNamespace(pid_t pid) {
  struct stat st;
  if (stat(absl::StrCat("/proc/", pid, "/ns/pid").c_str(), &st) != 0) return 0;
  return st.st_ino;
}

// Sends `sig` to every process of the pid namespace `ns` except `init` (its
// first process, which only SIGKILL reaches from outside). Each target is
// pinned by a pidfd and checked again, so a recycled pid is never hit.
void SignalNamespace(ino_t ns, pid_t init, int sig) {
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return;
  while (dirent* e = readdir(proc)) {
    int pid = 0;
    if (!absl::SimpleAtoi(e->d_name, &pid) || pid <= 0 || pid == init) continue;
    if (PidNamespace(pid) != ns) continue;
    Fd pidfd(PidfdOpen(pid));
    if (pidfd.get() >= 0 && PidNamespace(pid) == ns) PidfdSignal(pidfd.get(), sig);
  }
  closedir(proc);
}

// Parses bwrap's --info-fd document: {"child-pid": N, "pid-namespace": M, ...}.
bool ParseInfo(const std::string& json, pid_t* child, ino_t* pid_ns) {
  auto number = [&](absl::string_view key, int64_t* out) {
    const size_t at = json.find(absl::StrCat("\"", key, "\":"));
    if (at == std::string::npos) return false;
    const char* p = json.c_str() + at + key.size() + 3;
    char* end = nullptr;
    *out = std::strtoll(p, &end, 10);
    return end != p;
  };
  int64_t pid = 0, ns = 0;
  if (!number("child-pid", &pid) || pid <= 0) return false;
  *child = static_cast<pid_t>(pid);
  *pid_ns = number("pid-namespace", &ns) ? static_cast<ino_t>(ns) : 0;
  return true;
}

// RLIMIT_NPROC on the sandbox's first process, which waits on --block-fd
// before it starts the command. Set from outside because the kernel counts
// processes per user namespace only for limits set inside it: inherited from
// bwrap, the limit would count every process of the host uid. Linux lets the
// same uid (or CAP_SYS_RESOURCE) do it, so as root without that capability it
// is done by a child that becomes the script's user first.
absl::Status LimitProcesses(pid_t init, const Identity& id, int max_processes) {
  const rlimit limit{static_cast<rlim_t>(max_processes), static_cast<rlim_t>(max_processes)};
  if (prlimit(init, RLIMIT_NPROC, &limit, nullptr) == 0) return absl::OkStatus();
  if (errno != EPERM || !id.drop)
    return absl::UnavailableError(absl::StrCat("prlimit: ", std::strerror(errno)));
  const pid_t helper = fork();
  if (helper < 0) return absl::UnavailableError(absl::StrCat("fork: ", std::strerror(errno)));
  if (helper == 0) {
    if (setgroups(0, nullptr) != 0 || setresgid(id.gid, id.gid, id.gid) != 0 ||
        setresuid(id.uid, id.uid, id.uid) != 0) {
      _exit(errno & 0xff);
    }
    _exit(prlimit(init, RLIMIT_NPROC, &limit, nullptr) == 0 ? 0 : errno & 0xff);
  }
  int status = 0;
  while (waitpid(helper, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::UnavailableError(
        absl::StrCat("prlimit as the script user: ",
                     std::strerror(WIFEXITED(status) ? WEXITSTATUS(status) : EINTR)));
  }
  return absl::OkStatus();
}

struct ChildPlan {
  int out, err, devnull, report;
  int keep[2] = {-1, -1};  // descriptors bwrap needs past exec
  const char* dir;
  Identity id;
  pid_t parent;
  bool sandbox;
  bool limit_processes;  // RLIMIT_NPROC here (no sandbox, another user)
  const StagedPath* staged;
  size_t staged_count;
  rlimit as, fsize, nofile, cpu, nproc;
  char** argv;
  char** envp;
};

// After fork: only async-signal-safe calls.
[[noreturn]] void Child(const ChildPlan& p) {
  auto fail = [&](int code) {
    (void)!write(p.report, &code, sizeof(code));
    _exit(127);
  };
  setsid();
  if (dup2(p.out, STDOUT_FILENO) < 0 || dup2(p.err, STDERR_FILENO) < 0 ||
      dup2(p.devnull, STDIN_FILENO) < 0) {
    fail(errno);
  }
  const rlimit core{0, 0};
  setrlimit(RLIMIT_CORE, &core);
  if (p.as.rlim_cur != 0) setrlimit(RLIMIT_AS, &p.as);
  if (p.fsize.rlim_cur != 0) setrlimit(RLIMIT_FSIZE, &p.fsize);
  if (p.nofile.rlim_cur != 0) setrlimit(RLIMIT_NOFILE, &p.nofile);
  if (p.cpu.rlim_cur != 0) setrlimit(RLIMIT_CPU, &p.cpu);
  if (p.limit_processes && p.nproc.rlim_cur != 0) setrlimit(RLIMIT_NPROC, &p.nproc);
  // Nothing of the agent (sockets, files) is inherited past exec.
  close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
  for (int fd : p.keep) {
    if (fd >= 0 && fcntl(fd, F_SETFD, 0) != 0) fail(errno);
  }
  if (p.staged_count > 0) {
    if (unshare(CLONE_NEWNS) != 0 ||
        mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        mount("trainmesh-stage", kStageDir, "tmpfs", MS_NOSUID | MS_NODEV,
              "mode=0755,size=65536") != 0) {
      fail(errno);
    }
    for (size_t i = 0; i < p.staged_count; ++i) {
      const StagedPath& s = p.staged[i];
      if (s.dir) {
        if (mkdir(s.target.c_str(), 0755) != 0) fail(errno);
      } else {
        const int f = open(s.target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (f < 0) fail(errno);
        close(f);
      }
      if (syscall(SYS_move_mount, s.tree, "", AT_FDCWD, s.target.c_str(),
                  MOVE_MOUNT_F_EMPTY_PATH) != 0) {
        fail(errno);
      }
    }
  }
  if (chdir(p.dir) != 0) fail(errno);
  if (p.id.drop) {
    if (setgroups(0, nullptr) != 0 || setresgid(p.id.gid, p.id.gid, p.id.gid) != 0 ||
        setresuid(p.id.uid, p.id.uid, p.id.uid) != 0) {
      fail(errno);
    }
  }
  // Set after the uid change, which clears it. With bwrap's
  // --die-with-parent, the agent's death ends the whole sandbox.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != p.parent) _exit(127);
  prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  if (p.sandbox) {
    execve(p.argv[0], p.argv, p.envp);
  } else {
    execvpe(p.argv[0], p.argv, p.envp);  // searches PATH of the given environment
  }
  fail(errno);
  _exit(127);
}

}  // namespace

absl::StatusOr<ScriptResult> Run(const ScriptOptions& options,
                                 const std::function<void(Stream, absl::string_view)>& on_line,
                                 const std::atomic<int>* stop) {
  const SandboxOptions& sandbox = options.sandbox;
  const Limits& limits = sandbox.limits;
  absl::StatusOr<Identity> id = Resolve(sandbox);
  if (!id.ok()) return id.status();
  if (absl::Status s = HandOver(options.workdir, *id); !s.ok()) return s;
  if (options.output_dir != options.workdir) {
    if (absl::Status s = HandOver(options.output_dir, *id); !s.ok()) return s;
  }
  // The directories whose bytes count against max_output_bytes.
  std::vector<std::string> writable = {options.workdir};
  if (!options.output_dir.empty() && !Inside(options.output_dir, options.workdir)) {
    writable.push_back(options.output_dir);
  }

  Pipe out, err, report, info, block;
  for (Pipe* p : {&out, &err, &report}) {
    if (absl::Status s = p->Open(); !s.ok()) return s;
  }
  if (sandbox.enabled) {
    if (absl::Status s = info.Open(); !s.ok()) return s;
    if (absl::Status s = block.OpenSockets(); !s.ok()) return s;
  }
  Fd devnull(open("/dev/null", O_RDONLY | O_CLOEXEC));
  // Everything the child needs, prepared before fork.
  std::vector<std::string> argv_s;
  std::vector<Fd> staged_fds;
  std::vector<StagedPath> staged;
  Sources sources;
  if (sandbox.enabled && id->drop && HasCapSysAdmin()) {
    std::vector<std::string> paths = sandbox.read_only;
    paths.push_back(options.workdir);
    if (!options.output_dir.empty() && options.output_dir != options.workdir) {
      paths.push_back(options.output_dir);
    }
    for (const std::string& path : paths) {
      if (sources.count(path) > 0) continue;
      struct stat st;
      if (stat(path.c_str(), &st) != 0) {
        return absl::UnavailableError(
            absl::StrCat("cannot bind ", path, ": ", std::strerror(errno)));
      }
      staged_fds.emplace_back(static_cast<int>(syscall(
          SYS_open_tree, AT_FDCWD, path.c_str(), OPEN_TREE_CLONE | O_CLOEXEC | AT_RECURSIVE)));
      if (staged_fds.back().get() < 0) {
        return absl::UnavailableError(
            absl::StrCat("cannot clone ", path, ": ", std::strerror(errno)));
      }
      StagedPath& s = staged.emplace_back();
      s.tree = staged_fds.back().get();
      s.target = absl::StrCat(kStageDir, "/", staged.size());
      s.dir = S_ISDIR(st.st_mode);
      sources[path] = s.target;
    }
  }
  if (sandbox.enabled) {
    argv_s = BwrapArgs(options, sources, info.write.get(), block.read.get());
  } else {
    argv_s = {options.command};
    argv_s.insert(argv_s.end(), options.args.begin(), options.args.end());
  }
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s;
  for (const auto& [k, v] : options.env) env_s.push_back(absl::StrCat(k, "=", v));
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  auto rl = [](int64_t v) { return rlimit{static_cast<rlim_t>(v), static_cast<rlim_t>(v)}; };
  int64_t fsize = limits.max_file_bytes;
  if (limits.max_output_bytes > 0 && (fsize <= 0 || fsize > limits.max_output_bytes)) {
    fsize = limits.max_output_bytes + 1;  // one byte over: the usage check sees it
  }
  const std::string root_dir = "/";
  ChildPlan plan{out.write.get(),
                 err.write.get(),
                 devnull.get(),
                 report.write.get(),
                 {info.write.get(), block.read.get()},
                 sandbox.enabled ? root_dir.c_str() : options.workdir.c_str(),
                 *id,
                 getpid(),
                 sandbox.enabled,
                 /*limit_processes=*/!sandbox.enabled && id->drop,
                 staged.data(),
                 staged.size(),
                 rl(std::max<int64_t>(limits.memory_bytes, 0)),
                 rl(std::max<int64_t>(fsize, 0)),
                 rl(std::max(limits.max_open_files, 0)),
                 rl(std::max<int64_t>(limits.cpu_seconds, 0)),
                 rl(std::max(limits.max_processes, 0)),
                 argv.data(),
                 envp.data()};

  const pid_t pid = fork();
  if (pid < 0) return absl::UnavailableError(absl::StrCat("fork: ", std::strerror(errno)));
  if (pid == 0) Child(plan);
  out.write.Reset();
  err.write.Reset();
  report.write.Reset();
  info.write.Reset();
  block.read.Reset();
  staged_fds.clear();
  int exec_errno = 0;
  const ssize_t got = read(report.read.get(), &exec_errno, sizeof(exec_errno));
  if (got == static_cast<ssize_t>(sizeof(exec_errno))) {
    waitpid(pid, nullptr, 0);
    if (sandbox.enabled) {
      return absl::UnavailableError(absl::StrCat("cannot start the sandbox (", sandbox.bwrap,
                                                 "): ", std::strerror(exec_errno)));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("cannot run ", options.command, ": ", std::strerror(exec_errno)));
  }

  ScriptResult result;
  result.sandboxed = sandbox.enabled;
  result.uid = id->uid;
  result.gid = id->gid;
  // The sandbox's first process (its pid namespace's init), pinned.
  Fd init_fd;
  pid_t init = 0;
  ino_t pid_ns = 0;
  auto kill_all = [&] {
    if (init_fd.get() >= 0) {
      // Ends the whole pid namespace; bwrap outside reaps its first process
      // and exits (killing bwrap too would leave that one a zombie of the
      // host's init).
      PidfdSignal(init_fd.get(), SIGKILL);
    } else {
      kill(-pid, SIGKILL);
    }
  };
  auto terminate = [&] {
    if (sandbox.enabled && pid_ns != 0) {
      SignalNamespace(pid_ns, init, SIGTERM);
    } else if (!sandbox.enabled) {
      kill(-pid, SIGTERM);
    } else {
      kill_all();  // not started yet: nothing to be gentle with
    }
  };
  if (sandbox.enabled) {
    // bwrap writes where its sandbox is, then waits for us (--block-fd).
    std::string doc;
    const absl::Time give_up = absl::Now() + absl::Seconds(30);
    while (doc.find('}') == std::string::npos && absl::Now() < give_up) {
      pollfd p{info.read.get(), POLLIN, 0};
      if (poll(&p, 1, 100) < 0 && errno != EINTR) break;
      if ((p.revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      char buf[1024];
      const ssize_t r = read(info.read.get(), buf, sizeof(buf));
      if (r <= 0) break;  // bwrap failed before it started the sandbox: its stderr says why
      doc.append(buf, static_cast<size_t>(r));
    }
    info.read.Reset();
    if (ParseInfo(doc, &init, &pid_ns)) {
      init_fd.Reset(PidfdOpen(init));
      if (limits.max_processes > 0) {
        if (absl::Status s = LimitProcesses(init, *id, limits.max_processes); !s.ok()) {
          kill_all();
          waitpid(pid, nullptr, 0);
          return absl::UnavailableError(
              absl::StrCat("cannot limit the sandbox's processes: ", s.message()));
        }
      }
    } else if (!doc.empty() || absl::Now() >= give_up) {
      kill_all();
    }
    const char go = 1;
    (void)!send(block.write.get(), &go, 1, MSG_NOSIGNAL);
    block.write.Reset();
  }

  // The first stderr line, to tell bwrap's own failures from the script's.
  std::string first_stderr;
  bool any_stdout = false;
  auto sink = [&](Stream s, absl::string_view line) {
    if (s == Stream::kStderr && first_stderr.empty() && !any_stdout)
      first_stderr = std::string(line.substr(0, 4096));
    if (s == Stream::kStdout) any_stdout = true;
    on_line(s, line);
  };
  Output pipes[2] = {{out.read.get()}, {err.read.get()}};
  const absl::Time deadline = options.timeout == absl::InfiniteDuration()
                                  ? absl::InfiniteFuture()
                                  : absl::Now() + options.timeout;
  absl::Time killed_at = absl::InfiniteFuture();
  bool killed = false;
  absl::Time next_usage = absl::Now() + kUsageInterval;
  const bool watch_usage = limits.max_output_bytes > 0 || limits.max_output_files > 0;
  // Counts the writable directories; true when they hold too much.
  auto over_limit = [&] {
    TreeUsage total;
    for (const std::string& dir : writable) {
      const TreeUsage u =
          MeasureTree(dir, limits.max_output_files > 0 ? limits.max_output_files : INT64_MAX);
      total.bytes += u.bytes;
      total.entries += u.entries;
    }
    result.output_bytes = total.bytes;
    return (limits.max_output_bytes > 0 && total.bytes > limits.max_output_bytes) ||
           (limits.max_output_files > 0 && total.entries > limits.max_output_files);
  };
  while (pipes[0].open || pipes[1].open) {
    const absl::Time now = absl::Now();
    if (killed_at == absl::InfiniteFuture()) {
      if (stop != nullptr && stop->load() != 0) {
        result.stopped = true;
        terminate();
        killed_at = now;
      } else if (now >= deadline) {
        result.timed_out = true;
        terminate();
        killed_at = now;
      } else if (watch_usage && now >= next_usage) {
        next_usage = now + kUsageInterval;
        if (over_limit()) {
          // Filling the disk: no grace.
          result.output_limit_exceeded = true;
          kill_all();
          killed = true;
          killed_at = now;
        }
      }
    } else if (!killed && now - killed_at > options.kill_grace) {
      kill_all();
      killed = true;
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
      Output& p = pipes[which[k]];
      char buf[65536];
      const ssize_t r = read(p.fd, buf, sizeof(buf));
      const Stream stream = which[k] == 0 ? Stream::kStdout : Stream::kStderr;
      if (r <= 0) {
        p.open = false;
        Flush(p, stream, sink, /*all=*/true);
        continue;
      }
      p.buffer.append(buf, static_cast<size_t>(r));
      Flush(p, stream, sink, /*all=*/false);
    }
  }
  // The output is closed: everything that held it is gone (in the sandbox)
  // or the leader exited; make sure nothing is left either way.
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  kill_all();
  if (init_fd.get() >= 0) {
    // bwrap outside reports the command's end as soon as its first process
    // knows it, not once that one is gone: wait for it (its exit kills and
    // waits for every other process of the namespace), then reap it if it
    // was handed to us (the agent as a container's pid 1); otherwise the
    // host's init does.
    pollfd gone{init_fd.get(), POLLIN, 0};
    const absl::Time give_up = absl::Now() + absl::Seconds(30);
    while (poll(&gone, 1, 100) <= 0 && absl::Now() < give_up) {
    }
    siginfo_t info;
    waitid(P_PIDFD, static_cast<id_t>(init_fd.get()), &info, WEXITED | WNOHANG);
  }
  // It may have finished between two checks.
  if (watch_usage && !result.output_limit_exceeded && !result.stopped && !result.timed_out &&
      over_limit()) {
    result.output_limit_exceeded = true;
  }
  if (WIFEXITED(wstatus)) result.exit_code = WEXITSTATUS(wstatus);
  if (WIFSIGNALED(wstatus)) result.signal = WTERMSIG(wstatus);
  if (sandbox.enabled && result.signal == 0) {
    // bwrap exits 128+N when the command died of signal N, like a shell.
    if (result.exit_code > 128 && result.exit_code <= 128 + 64)
      result.signal = result.exit_code - 128;
    if (result.exit_code == 1 && absl::StartsWith(first_stderr, kBwrapPrefix)) {
      if (absl::StartsWith(first_stderr, kBwrapExecFailed)) {
        // "bwrap: execvp CMD: No such file or directory"
        absl::string_view why = absl::string_view(first_stderr).substr(kBwrapExecFailed.size());
        if (absl::StartsWith(why, options.command + ": "))
          why.remove_prefix(options.command.size() + 2);
        return absl::InvalidArgumentError(absl::StrCat("cannot run ", options.command, ": ", why));
      }
      if (init == 0 || !any_stdout) {
        return absl::UnavailableError(absl::StrCat("the sandbox could not start: ", first_stderr));
      }
    }
  }
  return result;
}

absl::Status SandboxAvailable(const SandboxOptions& options, const std::string& scratch_parent) {
  constexpr absl::string_view kHint =
      " (bubblewrap needs unprivileged user namespaces: sysctl user.max_user_namespaces > 0 and, "
      "where it exists, "
      "kernel.unprivileged_userns_clone=1; in a container, a seccomp profile that allows them)";
  if (!options.enabled) return absl::FailedPreconditionError("the sandbox is turned off");
  if (access(options.bwrap.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat("bubblewrap is not installed at ",
                                                      options.bwrap, " (", std::strerror(errno),
                                                      "); install the bubblewrap package"));
  }
  std::error_code ec;
  const std::string parent =
      scratch_parent.empty() ? std::filesystem::temp_directory_path(ec).string() : scratch_parent;
  std::string dir = absl::StrCat(parent, "/sandbox-probe-XXXXXX");
  if (mkdtemp(dir.data()) == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot make ", dir, ": ", std::strerror(errno)));
  }
  ScriptOptions probe;
  probe.command = "true";
  probe.workdir = dir;
  probe.env = {{"PATH", "/usr/bin:/bin"}};
  probe.timeout = absl::Seconds(60);
  probe.kill_grace = absl::Seconds(1);
  probe.sandbox = options;
  probe.sandbox.read_only.clear();
  probe.sandbox.network = false;
  std::vector<std::string> said;
  absl::StatusOr<ScriptResult> r = Run(
      probe, [&](Stream, absl::string_view line) { said.emplace_back(line.substr(0, 500)); },
      nullptr);
  rmdir(dir.c_str());
  if (!r.ok())
    return absl::FailedPreconditionError(
        absl::StrCat("cannot start a sandbox: ", r.status().message(), kHint));
  if (r->exit_code != 0 || r->signal != 0 || r->timed_out) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot start a sandbox: `true` in it exited with ", r->exit_code,
                     r->signal != 0 ? absl::StrCat(" (signal ", r->signal, ")") : "",
                     said.empty() ? "" : absl::StrCat(": ", absl::StrJoin(said, "; ")), kHint));
  }
  return absl::OkStatus();
}

}  // namespace trainmesh::scriptrun
