// Collecting a script's outputs from a hostile tree: links, FIFOs, devices,
// sockets and other users' files are left out; nested folders are kept.
#include "libs/scriptrun/outputs.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace trainmesh::scriptrun {
namespace {

using ::testing::ElementsAre;

// The script's user: a uid of its own when the test is root (as on CI), so
// that "owned by another user" means something; else ourselves.
const uid_t kScriptUid = geteuid() == 0 ? 3999872 : geteuid();

std::string TempDir() {
  std::string t = absl::StrCat(::testing::TempDir(), "outputs-XXXXXX");
  std::string dir = mkdtemp(t.data());
  chmod(dir.c_str(), 0755);
  return dir;
}

void Write(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
  if (geteuid() == 0) lchown(path.c_str(), kScriptUid, kScriptUid);
}

std::string ReadAll(int fd) {
  std::string bytes;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) bytes.append(buf, static_cast<size_t>(n));
  return bytes;
}

class CollectTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = TempDir();
    out_ = root_ + "/output";
    mkdir(out_.c_str(), 0755);
    if (geteuid() == 0) chown(out_.c_str(), kScriptUid, kScriptUid);
  }

  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }

  absl::StatusOr<CollectReport> Collect(CollectOptions options = {}) {
    options.owner = kScriptUid;
    got_.clear();
    return CollectOutputs(out_, options, [&](const OutputFile& f) {
      got_[f.name] = ReadAll(f.fd);
      EXPECT_EQ(f.size, static_cast<int64_t>(got_[f.name].size()));
      return absl::OkStatus();
    });
  }

  std::string root_, out_;
  std::map<std::string, std::string> got_;
};

TEST_F(CollectTest, RegularFilesOfTheScriptUserWithTheirFoldersAndNothingElse) {
  Write(out_ + "/model.pt", "weights");
  mkdir((out_ + "/figures").c_str(), 0755);
  if (geteuid() == 0) chown((out_ + "/figures").c_str(), kScriptUid, kScriptUid);
  Write(out_ + "/figures/loss.png", "png");
  // The attacks: links to the host's secrets, a FIFO no one writes (a reader
  // that opens it blocks forever), a socket.
  ASSERT_EQ(symlink("/etc/shadow", (out_ + "/x.txt").c_str()), 0);
  ASSERT_EQ(symlink("/etc", (out_ + "/etc").c_str()), 0);
  ASSERT_EQ(mkfifo((out_ + "/pipe").c_str(), 0644), 0);
  const int sock = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string sock_path = out_ + "/sock";
  ASSERT_LT(sock_path.size(), sizeof(addr.sun_path));
  std::copy(sock_path.begin(), sock_path.end(), addr.sun_path);
  ASSERT_EQ(bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  close(sock);
  std::vector<std::string> expected_skips = {"etc: a symbolic link", "pipe: a FIFO",
                                             "sock: a socket", "x.txt: a symbolic link"};
  if (geteuid() == 0) {
    // A device node, and a hard link to a file of root's (made outside).
    ASSERT_EQ(mknod((out_ + "/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
    std::ofstream(root_ + "/root-secret") << "root only";
    chmod((root_ + "/root-secret").c_str(), 0600);
    ASSERT_EQ(link((root_ + "/root-secret").c_str(), (out_ + "/hardlink").c_str()), 0);
    expected_skips = {"etc: a symbolic link", "hardlink: owned by another user (uid 0)",
                      "null: a device",       "pipe: a FIFO",
                      "sock: a socket",       "x.txt: a symbolic link"};
  }
  absl::StatusOr<CollectReport> report = Collect();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_THAT(got_, ::testing::UnorderedElementsAre(::testing::Pair("figures/loss.png", "png"),
                                                    ::testing::Pair("model.pt", "weights")));
  EXPECT_THAT(report->collected, ElementsAre("figures/loss.png", "model.pt"));
  EXPECT_EQ(report->skipped, expected_skips);
  EXPECT_EQ(report->bytes, 10);
  EXPECT_FALSE(report->over_limit);
}

TEST_F(CollectTest, TheOutputDirectoryItselfMustNotBeALink) {
  ASSERT_EQ(rmdir(out_.c_str()), 0);
  ASSERT_EQ(symlink("/etc", out_.c_str()), 0);
  EXPECT_EQ(Collect().status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_EQ(unlink(out_.c_str()), 0);
  EXPECT_EQ(Collect().status().code(), absl::StatusCode::kNotFound);
}

TEST_F(CollectTest, StopsAtTheByteAndFileLimits) {
  Write(out_ + "/a", std::string(600, 'a'));
  Write(out_ + "/b", std::string(600, 'b'));
  CollectOptions small;
  small.max_bytes = 1000;
  absl::StatusOr<CollectReport> report = Collect(small);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->over_limit);
  EXPECT_THAT(report->collected, ElementsAre("a"));
  CollectOptions few;
  few.max_files = 1;
  report = Collect(few);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->over_limit);
  EXPECT_EQ(report->collected.size(), 1u);
}

TEST_F(CollectTest, ADeepTreeIsCutAndAnErrorFromTheSinkStops) {
  std::string dir = out_;
  for (int i = 0; i < 5; ++i) {
    dir += "/d";
    mkdir(dir.c_str(), 0755);
  }
  Write(dir + "/deep.txt", "x");
  Write(out_ + "/top.txt", "y");
  CollectOptions shallow;
  shallow.max_depth = 3;
  absl::StatusOr<CollectReport> report = Collect(shallow);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_THAT(report->collected, ElementsAre("top.txt"));
  ASSERT_EQ(report->skipped.size(), 1u);
  EXPECT_THAT(report->skipped[0], ::testing::HasSubstr("d/d/d: nested deeper than 3"));
  CollectOptions any;
  any.owner = kScriptUid;
  auto failed = CollectOutputs(
      out_, any, [](const OutputFile&) { return absl::UnavailableError("disk full"); });
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(CollectTest, MeasureCountsBytesAndEntriesWithoutFollowingLinks) {
  Write(out_ + "/a", std::string(100000, 'a'));
  ASSERT_EQ(symlink("/usr", (out_ + "/usr").c_str()), 0);  // not walked into
  const TreeUsage usage = MeasureTree(out_, 1000);
  EXPECT_GE(usage.bytes, 100000);
  EXPECT_LT(usage.bytes, 200000);
  EXPECT_EQ(usage.entries, 2);
  EXPECT_GT(MeasureTree(out_, 1).entries, 1);  // past the cap: counted as over it
}

}  // namespace
}  // namespace trainmesh::scriptrun
