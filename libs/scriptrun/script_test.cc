// Real processes in a real sandbox (bubblewrap): what a hostile script can
// reach, how much it can take, and that nothing of it outlives a cancel.
#include "libs/scriptrun/script.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/scriptrun/testing/loopback_listener.h"

extern char** environ;

namespace trainmesh::scriptrun {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Whether this machine can sandbox (it can here and on CI). Tests of the
// sandbox itself skip, saying why, where it cannot; the others then run
// without it.
const absl::Status& SandboxHere() {
  static const absl::Status* status = [] {
    auto* s = new absl::Status(SandboxAvailable(SandboxOptions{}));
    if (!s->ok()) std::cerr << "NOTE: no sandbox on this machine; its tests skip: " << *s << "\n";
    return s;
  }();
  return *status;
}

#define REQUIRE_SANDBOX() \
  if (!SandboxHere().ok()) GTEST_SKIP() << "no sandbox here: " << SandboxHere()

std::string Workdir() {
  std::string t = absl::StrCat(::testing::TempDir(), "work-XXXXXX");
  std::string dir = mkdtemp(t.data());
  chmod(dir.c_str(), 0755);
  mkdir((dir + "/output").c_str(), 0755);
  return dir;
}

struct Lines {
  std::mutex mu;
  std::vector<std::string> out, err;
  std::atomic<int> seen{0};
  std::function<void(Stream, absl::string_view)> Sink() {
    return [this](Stream s, absl::string_view line) {
      {
        std::lock_guard<std::mutex> l(mu);
        (s == Stream::kStdout ? out : err).emplace_back(line);
      }
      seen.fetch_add(1);
    };
  }
};

ScriptOptions Shell(const std::string& script) {
  ScriptOptions o;
  o.command = "/bin/sh";
  o.args = {"-c", script};
  o.workdir = Workdir();
  o.output_dir = o.workdir + "/output";
  o.env = {{"PATH", "/usr/bin:/bin"}, {"GREETING", "hi"}};
  o.sandbox.enabled = SandboxHere().ok();
  return o;
}

// Waits for `condition` until `timeout`; true when it held.
bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return true;
}

// Host processes (by /proc) whose command line has `arg` as an argument.
std::vector<pid_t> ProcessesWithArg(const std::string& arg) {
  std::vector<pid_t> found;
  DIR* proc = opendir("/proc");
  while (dirent* e = readdir(proc)) {
    int pid = 0;
    if (!absl::SimpleAtoi(e->d_name, &pid)) continue;
    std::ifstream in(absl::StrCat("/proc/", pid, "/cmdline"), std::ios::binary);
    std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (absl::string_view a : absl::StrSplit(cmdline, '\0')) {
      if (a == arg) found.push_back(pid);
    }
  }
  closedir(proc);
  return found;
}

// Host processes whose real uid is `uid`; their status in `described`. With
// `zombies`, those too: a zombie holds one of the uid's RLIMIT_NPROC slots
// until it is reaped, which a loaded machine does late.
int ProcessesOf(uid_t uid, std::string* described = nullptr, bool zombies = false) {
  int n = 0;
  DIR* proc = opendir("/proc");
  while (dirent* e = readdir(proc)) {
    int pid = 0;
    if (!absl::SimpleAtoi(e->d_name, &pid)) continue;
    std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
    std::string line;
    while (std::getline(in, line)) {
      if (!zombies && line.rfind("State:", 0) == 0 && line.find("zombie") != std::string::npos)
        break;
      if (line.rfind("Uid:", 0) != 0) continue;
      std::vector<std::string> f = absl::StrSplit(line, '\t', absl::SkipEmpty());
      uint32_t real = 0;
      if (f.size() > 1 && absl::SimpleAtoi(f[1], &real) && real == uid) {
        ++n;
        if (described != nullptr) {
          std::ifstream again(absl::StrCat("/proc/", pid, "/status"));
          absl::StrAppend(described, "pid ", pid, ":\n",
                          std::string((std::istreambuf_iterator<char>(again)),
                                      std::istreambuf_iterator<char>()));
        }
      }
      break;
    }
  }
  closedir(proc);
  return n;
}

// A process the host can still start (and finish).
bool HostCanSpawn() {
  pid_t pid = 0;
  char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
  if (posix_spawn(&pid, "/bin/true", nullptr, nullptr, argv, environ) != 0) return false;
  int status = 0;
  return waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

using Listener = LoopbackListener;

std::string ConnectScript(int port) {
  return absl::StrCat(
      "exec python3 -c 'import socket\ntry:\n  socket.create_connection((\"127.0.0.1\", ", port,
      "), timeout=5); print(\"connected\")\nexcept OSError as e:\n  print(\"refused:\", e)'");
}

TEST(ScriptTest, LinesExitCodeAndAScrubbedEnvironment) {
  Lines lines;
  auto r = scriptrun::Run(
      Shell("echo $GREETING; echo oops >&2; printf 'no newline'; env | wc -l >&2; exit 3"),
      lines.Sink(), nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_THAT(lines.out, ElementsAre("hi", "no newline"));
  ASSERT_EQ(lines.err.size(), 2u);
  EXPECT_EQ(lines.err[0], "oops");
  EXPECT_LE(std::stoi(lines.err[1]), 4);  // PATH, GREETING, PWD, SHLVL/_ at most
}

TEST(ScriptTest, RunsAsAnUnprivilegedUserInItsOwnDirectory) {
  Lines lines;
  ScriptOptions o = Shell("id -u; pwd; touch made-here && echo ok");
  auto r = scriptrun::Run(o, lines.Sink(), nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(lines.out.size(), 3u) << (lines.err.empty() ? "" : lines.err[0]);
  if (geteuid() == 0) {
    EXPECT_NE(lines.out[0], "0");
    EXPECT_NE(r->uid, 0u);
  }
  EXPECT_EQ(lines.out[1], o.workdir);
  EXPECT_EQ(lines.out[2], "ok");
  // The file belongs to the host user the result names.
  struct stat st;
  ASSERT_EQ(stat((o.workdir + "/made-here").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, r->uid);
}

TEST(ScriptTest, StopEndsEverything) {
  Lines lines;
  std::atomic<int> stop{0};
  ScriptOptions o = Shell("sleep 300 & echo started; wait");
  std::thread t([&] {
    WaitFor([&] { return lines.seen.load() > 0; }, absl::Seconds(30));
    stop = 1;
  });
  auto r = scriptrun::Run(o, lines.Sink(), &stop);
  t.join();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->stopped);
  EXPECT_NE(r->signal, 0);
}

TEST(ScriptTest, TimeoutAndMissingCommand) {
  Lines lines;
  ScriptOptions o = Shell("echo begin; sleep 60");
  o.timeout = absl::Milliseconds(300);
  auto r = scriptrun::Run(o, lines.Sink(), nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->timed_out);
  ScriptOptions missing = Shell("");
  missing.command = "definitely-not-a-command";
  missing.args.clear();
  auto m = scriptrun::Run(missing, lines.Sink(), nullptr);
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << m.status();
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("definitely-not-a-command"));
}

TEST(ScriptTest, MemoryLimitApplies) {
  Lines lines;
  ScriptOptions o = Shell("head -c 300000000 /dev/zero | tail -c 1 >/dev/null; echo done");
  o.sandbox.limits.memory_bytes = 64 << 20;
  auto r = scriptrun::Run(o, lines.Sink(), nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(lines.out, ::testing::Contains("done"));  // streaming tools fit; a hog would not
  ScriptOptions hog = Shell("exec python3 -c 'x = bytearray(500 * 1024 * 1024)'");
  hog.sandbox.limits.memory_bytes = 128 << 20;
  auto h = scriptrun::Run(hog, lines.Sink(), nullptr);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_NE(h->exit_code, 0);
}

TEST(ScriptTest, WithoutTheSandboxTheProcessGroupStillEndsAndRootIsDropped) {
  Lines lines;
  std::atomic<int> stop{0};
  ScriptOptions o = Shell("id -u; sleep 300 & echo started; wait");
  o.sandbox.enabled = false;
  std::thread t([&] {
    WaitFor([&] { return lines.seen.load() > 1; }, absl::Seconds(30));
    stop = 1;
  });
  auto r = scriptrun::Run(o, lines.Sink(), &stop);
  t.join();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->sandboxed);
  EXPECT_TRUE(r->stopped);
  if (geteuid() == 0) {
    EXPECT_NE(lines.out.at(0), "0");
  }
}

TEST(ScriptTest, ProbeSaysWhatIsMissing) {
  SandboxOptions missing;
  missing.bwrap = "/nonexistent/bwrap";
  EXPECT_EQ(SandboxAvailable(missing).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(SandboxAvailable(missing).message()),
              HasSubstr("bubblewrap is not installed"));
  SandboxOptions off;
  off.enabled = false;
  EXPECT_THAT(std::string(SandboxAvailable(off).message()), HasSubstr("turned off"));
  SandboxOptions as_root;
  as_root.uid = 0;
  if (geteuid() == 0) {
    EXPECT_THAT(std::string(SandboxAvailable(as_root).message()), HasSubstr("never run as root"));
  }
}

// /etc/shadow, the agent's environment and state, other users' files, the
// agent's open descriptors: none is reachable from inside.
TEST(SandboxTest, NothingOfTheHostIsReachable) {
  REQUIRE_SANDBOX();
  setenv("TRAINMESH_AGENT_API_KEY", "tm_agent_secret_in_env", 1);
  // The agent's state, next to the job's directory but not in it.
  const std::string state_dir = Workdir();
  std::ofstream(state_dir + "/agent.state") << "agent-id-secret\n";
  // A descriptor the agent holds open (without O_CLOEXEC).
  const int held = open((state_dir + "/agent.state").c_str(), O_RDONLY);
  ASSERT_GE(held, 0);
  if (geteuid() == 0) {
    ASSERT_EQ(access("/etc/shadow", R_OK), 0);  // the host can: the check below means something
  }
  Lines lines;
  ScriptOptions o = Shell(absl::StrCat(
      "cat /etc/shadow >/dev/null 2>&1 && echo shadow-readable || echo shadow-refused;"
      "cat /proc/",
      getpid(), "/environ >/dev/null 2>&1 && echo environ-readable || echo environ-refused;",
      "cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c 'tm_agent_[s]ecret';",
      "ls /proc | grep -c '^[0-9]';", "cat ", state_dir,
      "/agent.state 2>/dev/null || echo state-refused;",
      "ls /root >/dev/null 2>&1 && echo root-listed || echo root-refused;",
      "ls /proc/self/fd | wc -l;",
      "for d in / /etc /usr /dev; do touch $d/x 2>/dev/null && echo wrote-$d; done;",
      "touch /tmp/x /dev/shm/x made-here output/made-here && echo scratch-ok"));
  auto r = scriptrun::Run(o, lines.Sink(), nullptr);
  close(held);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->sandboxed);
  ASSERT_EQ(lines.out.size(), 8u) << testing::PrintToString(lines.out)
                                  << testing::PrintToString(lines.err);
  EXPECT_EQ(lines.out[0], "shadow-refused");
  EXPECT_EQ(lines.out[1], "environ-refused");
  EXPECT_EQ(lines.out[2], "0");  // no process in sight holds the agent's key
  int visible = 0;
  ASSERT_TRUE(absl::SimpleAtoi(lines.out[3], &visible));
  EXPECT_LE(visible, 8);  // its own few processes: a private /proc
  EXPECT_EQ(lines.out[4], "state-refused");
  EXPECT_EQ(lines.out[5], "root-refused");
  EXPECT_EQ(lines.out[6], "4");  // 0, 1, 2 and ls's own: nothing inherited
  EXPECT_EQ(lines.out[7], "scratch-ok");
  unsetenv("TRAINMESH_AGENT_API_KEY");
}

// The agent's work root may sit under folders the script's user cannot
// search (tools/test runs everything under a 0700 temp dir): the job's own
// folders still work inside, and nothing above them shows.
TEST(SandboxTest, FoldersAboveTheJobNeedNotBeReachableByTheScriptUser) {
  REQUIRE_SANDBOX();
  if (geteuid() != 0) GTEST_SKIP() << "needs root: a folder only root can search";
  const std::string closed = Workdir();
  ASSERT_EQ(chmod(closed.c_str(), 0700), 0);
  const std::string dataset = closed + "/data.csv";
  std::ofstream(dataset) << "a,b\n1,2\n";
  std::ofstream(closed + "/agent.state") << "not for scripts\n";
  Lines lines;
  ScriptOptions o =
      Shell("pwd; wc -l < \"$DATA\"; echo made > output/f && cat output/f; ls " + closed);
  o.workdir = closed + "/job";
  o.output_dir = o.workdir + "/output";
  ASSERT_EQ(mkdir(o.workdir.c_str(), 0755), 0);
  ASSERT_EQ(mkdir(o.output_dir.c_str(), 0755), 0);
  o.env["DATA"] = dataset;
  o.sandbox.read_only = {dataset};
  auto r = scriptrun::Run(o, lines.Sink(), nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 0) << testing::PrintToString(lines.err);
  EXPECT_THAT(lines.out, ElementsAre(o.workdir, "2", "made", "data.csv", "job"));
  // The host sees the file where it was written, owned by the script's user.
  struct stat st;
  ASSERT_EQ(stat((o.output_dir + "/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, r->uid);
}

TEST(SandboxTest, NoNetworkUnlessAllowed) {
  REQUIRE_SANDBOX();
  Listener host;
  ASSERT_NE(host.port, 0);
  Lines closed, open;
  ScriptOptions o = Shell(ConnectScript(host.port));
  auto r = scriptrun::Run(o, closed.Sink(), nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(closed.out.size(), 1u) << testing::PrintToString(closed.err);
  EXPECT_THAT(closed.out[0], HasSubstr("refused"));
  // The same script with the network allowed reaches the port: the check
  // above can fail.
  o.sandbox.network = true;
  r = scriptrun::Run(o, open.Sink(), nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(open.out, ElementsAre("connected")) << testing::PrintToString(open.err);
}

TEST(SandboxTest, AForkBombIsContained) {
  REQUIRE_SANDBOX();
  if (geteuid() != 0) GTEST_SKIP() << "counts the processes of a uid of its own: needs root";
  constexpr uid_t kUid = 3999871;  // no one else's: every process of it is the bomb's
  constexpr int kLimit = 40;
  Lines lines;
  std::atomic<int> stop{0};
  ScriptOptions o = Shell("echo started; bomb() { bomb | bomb & }; bomb; sleep 600");
  o.sandbox.uid = kUid;
  o.sandbox.limits.max_processes = kLimit;
  o.kill_grace = absl::Milliseconds(500);
  std::atomic<int> most{0};
  bool saturated = false, host_fine = false;
  std::thread watcher([&] {
    WaitFor([&] { return lines.seen.load() > 0; }, absl::Seconds(30));
    saturated = WaitFor(
        [&] {
          const int n = ProcessesOf(kUid, nullptr, /*zombies=*/true);
          if (n > most.load()) most = n;
          return n >= kLimit - 5;
        },
        absl::Seconds(30));
    host_fine = HostCanSpawn();
    for (int i = 0; i < 20; ++i)
      most = std::max(most.load(), ProcessesOf(kUid, nullptr, /*zombies=*/true));
    stop = 1;
  });
  const absl::Time began = absl::Now();
  auto r = scriptrun::Run(o, lines.Sink(), &stop);
  watcher.join();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(saturated) << "the bomb never reached the limit; most seen " << most.load();
  EXPECT_TRUE(host_fine);
  EXPECT_TRUE(r->stopped);
  EXPECT_LE(most.load(), kLimit + 1);  // the limit, plus bwrap outside the namespace
  EXPECT_LT(absl::Now() - began, absl::Seconds(60));
  std::string left;
  EXPECT_EQ(ProcessesOf(kUid, &left), 0) << left;  // every one of them is gone once Run returns
}

TEST(SandboxTest, CancelKillsTheWholePidNamespaceSetsidIncluded) {
  REQUIRE_SANDBOX();
  // Arguments no other process has, to find these sleeps on the host.
  const std::string daemon = absl::StrCat("1000.", getpid(), "1");
  const std::string main = absl::StrCat("1000.", getpid(), "2");
  Lines lines;
  std::atomic<int> stop{0};
  // Both ignore SIGTERM: only the namespace's SIGKILL ends them.
  ScriptOptions o = Shell(absl::StrCat("trap '' TERM; setsid sh -c \"trap '' TERM; exec sleep ",
                                       daemon, "\" & echo started; exec sleep ", main));
  o.kill_grace = absl::Milliseconds(300);
  std::vector<pid_t> daemons;
  std::thread canceller([&] {
    WaitFor([&] { return !ProcessesWithArg(daemon).empty() && !ProcessesWithArg(main).empty(); },
            absl::Seconds(30));
    daemons = ProcessesWithArg(daemon);
    stop = 1;
  });
  auto r = scriptrun::Run(o, lines.Sink(), &stop);
  canceller.join();
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(daemons.size(), 1u) << "the setsid daemon never started";
  EXPECT_TRUE(r->stopped);
  EXPECT_EQ(r->signal, 9);  // SIGTERM was ignored: the grace ran out
  EXPECT_THAT(ProcessesWithArg(daemon), IsEmpty());
  EXPECT_THAT(ProcessesWithArg(main), IsEmpty());
  EXPECT_NE(access(absl::StrCat("/proc/", daemons[0]).c_str(), F_OK), 0);
}

TEST(SandboxTest, OutputPastTheLimitIsCutAndSaidSo) {
  REQUIRE_SANDBOX();
  constexpr int64_t kLimit = 8 << 20;
  // 1 GB as one file: the file size limit cuts it just past the output limit.
  Lines one;
  ScriptOptions big = Shell("head -c 1000000000 /dev/zero > output/big; echo \"head: $?\"");
  big.sandbox.limits.max_output_bytes = kLimit;
  auto r = scriptrun::Run(big, one.Sink(), nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->output_limit_exceeded);
  EXPECT_GT(r->output_bytes, kLimit);
  struct stat st;
  ASSERT_EQ(stat((big.workdir + "/output/big").c_str(), &st), 0);
  EXPECT_LE(st.st_size, kLimit + 1);
  // 1 GB as many files, each under the limit: the runner's count stops it.
  Lines many;
  ScriptOptions files = Shell(
      "i=0; while [ $i -lt 100 ]; do head -c 10000000 /dev/zero > output/f$i; i=$((i+1)); done; "
      "echo finished");
  files.sandbox.limits.max_output_bytes = kLimit;
  const absl::Time began = absl::Now();
  r = scriptrun::Run(files, many.Sink(), nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->output_limit_exceeded);
  EXPECT_GT(r->output_bytes, kLimit);
  EXPECT_LT(absl::Now() - began, absl::Seconds(30));
}

TEST(SandboxTest, LimitsAreInPlaceAndPythonWithTorchRuns) {
  REQUIRE_SANDBOX();
  Lines lines;
  ScriptOptions o = Shell(
      "exec /usr/bin/python3 -c 'import resource as r, torch\n"
      "for k in (r.RLIMIT_NPROC, r.RLIMIT_NOFILE, r.RLIMIT_CPU, r.RLIMIT_AS, r.RLIMIT_FSIZE): "
      "print(r.getrlimit(k)[1])\n"
      "print(torch.ones(3).sum().item())'");
  o.sandbox.limits.max_processes = 64;
  o.sandbox.limits.max_open_files = 256;
  o.sandbox.limits.cpu_seconds = 600;
  o.sandbox.limits.memory_bytes = int64_t{16} << 30;
  o.sandbox.limits.max_file_bytes = int64_t{1} << 30;
  o.sandbox.limits.max_output_bytes = int64_t{2} << 30;
  auto r = scriptrun::Run(o, lines.Sink(), nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 0) << testing::PrintToString(lines.err);
  EXPECT_THAT(lines.out, ElementsAre("64", "256", "600", absl::StrCat(int64_t{16} << 30),
                                     absl::StrCat(int64_t{1} << 30), "3.0"));
}

}  // namespace
}  // namespace trainmesh::scriptrun
