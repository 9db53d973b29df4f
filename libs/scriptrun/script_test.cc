#include "libs/scriptrun/script.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace trainmesh::scriptrun {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string Workdir() {
  std::string t = absl::StrCat(::testing::TempDir(), "work-XXXXXX");
  std::string dir = mkdtemp(t.data());
  chmod(dir.c_str(), 0755);
  return dir;
}

struct Lines {
  std::vector<std::string> out, err;
  std::atomic<int> seen{0};
  std::function<void(Stream, absl::string_view)> Sink() {
    return [this](Stream s, absl::string_view line) {
      (s == Stream::kStdout ? out : err).emplace_back(line);
      seen.fetch_add(1);
    };
  }
};

ScriptOptions Shell(const std::string& script) {
  ScriptOptions o;
  o.command = "/bin/sh";
  o.args = {"-c", script};
  o.workdir = Workdir();
  o.env = {{"PATH", "/usr/bin:/bin"}, {"GREETING", "hi"}};
  return o;
}

TEST(ScriptTest, LinesExitCodeAndAScrubbedEnvironment) {
  Lines lines;
  auto r = scriptrun::Run(Shell("echo $GREETING; echo oops >&2; printf 'no newline'; env | wc -l >&2; exit 3"),
               lines.Sink(), nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_THAT(lines.out, ElementsAre("hi", "no newline"));
  EXPECT_EQ(lines.err[0], "oops");
  EXPECT_LE(std::stoi(lines.err[1]), 4);  // PATH, GREETING, PWD, SHLVL/_ at most
}

TEST(ScriptTest, RunsAsAnUnprivilegedUserInItsOwnDirectory) {
  Lines lines;
  ScriptOptions o = Shell("id -u; pwd; touch made-here && echo ok");
  auto r = scriptrun::Run(o, lines.Sink(), nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  if (geteuid() == 0) {
    EXPECT_NE(lines.out[0], "0");
  }
  EXPECT_EQ(lines.out[1], o.workdir);
  EXPECT_EQ(lines.out[2], "ok");
}

TEST(ScriptTest, StopEndsTheWholeProcessGroup) {
  Lines lines;
  std::atomic<int> stop{0};
  ScriptOptions o = Shell("sleep 300 & echo started; wait");
  std::thread t([&] {
    while (lines.seen.load() == 0) std::this_thread::yield();
    stop = 1;
  });
  auto r = scriptrun::Run(o, lines.Sink(), &stop);
  t.join();
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->stopped);
  EXPECT_NE(r->signal, 0);
}

TEST(ScriptTest, TimeoutAndMissingCommand) {
  Lines lines;
  ScriptOptions o = Shell("echo begin; sleep 60");
  o.timeout = absl::Milliseconds(300);
  auto r = scriptrun::Run(o, lines.Sink(), nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->timed_out);
  ScriptOptions missing = Shell("");
  missing.command = "definitely-not-a-command";
  missing.args.clear();
  auto m = scriptrun::Run(missing, lines.Sink(), nullptr);
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("definitely-not-a-command"));
}

TEST(ScriptTest, MemoryLimitApplies) {
  Lines lines;
  ScriptOptions o = Shell("head -c 300000000 /dev/zero | tail -c 1 >/dev/null; echo done");
  o.memory_bytes = 64 << 20;
  auto r = scriptrun::Run(o, lines.Sink(), nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_THAT(lines.out, Contains("done"));  // streaming tools fit; a hog would not
  ScriptOptions hog = Shell("exec python3 -c 'x = bytearray(500 * 1024 * 1024)'");
  hog.memory_bytes = 128 << 20;
  hog.env["PATH"] = "/usr/bin:/bin";
  auto h = scriptrun::Run(hog, lines.Sink(), nullptr);
  ASSERT_TRUE(h.ok());
  EXPECT_NE(h->exit_code, 0);
}

}  // namespace
}  // namespace trainmesh::scriptrun
