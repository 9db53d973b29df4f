#include "libs/artifacts/artifact_store.h"

#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace trainmesh::artifacts {
namespace {

constexpr char kJob[] = "11111111-2222-3333-4444-555555555555";

std::string TempRoot() {
  std::string t = absl::StrCat(::testing::TempDir(), "/artifacts-XXXXXX");
  return mkdtemp(t.data());
}

TEST(ArtifactStoreTest, PutReadStreamAndChecksum) {
  ArtifactStore store(TempRoot());
  absl::StatusOr<trainmesh::v1::Artifact> a = store.Put(kJob, "model.pt", "hello world", 7);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->uri(), absl::StrCat("artifact:", kJob, "/model.pt"));
  EXPECT_EQ(a->size_bytes(), 11);
  EXPECT_EQ(a->sha256(), "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
  EXPECT_EQ(*store.Read(a->uri()), "hello world");
  std::string streamed;
  ASSERT_TRUE(store.Stream(kJob, "model.pt", 4, [&](absl::string_view d, int64_t off, int64_t total) {
    EXPECT_EQ(off, static_cast<int64_t>(streamed.size()));
    EXPECT_EQ(total, 11);
    streamed.append(d.data(), d.size());
    return true;
  }).ok());
  EXPECT_EQ(streamed, "hello world");
}

TEST(ArtifactStoreTest, NamesCannotEscapeTheRoot) {
  ArtifactStore store(TempRoot());
  EXPECT_EQ(store.Put(kJob, "../x", "a", 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store.Put("../../etc", "x", "a", 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store.Path("artifact:../x/y").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store.Path(absl::StrCat("artifact:", kJob, "/missing")).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(ArtifactStoreTest, PruneKeepsTheNewestCheckpointsAndLatestFindsTheNewest) {
  ArtifactStore store(TempRoot());
  EXPECT_FALSE(store.Latest(kJob, "checkpoint-").has_value());
  // A writer's scratch file (killed mid-write) is never the newest checkpoint.
  std::ofstream(*store.ScratchPath(kJob, "checkpoint-999.pt")) << "half";
  for (int step : {100, 300, 200, 400}) {
    ASSERT_TRUE(store.Put(kJob, absl::StrCat("checkpoint-", step, ".pt"), "x", step).ok());
  }
  ASSERT_TRUE(store.Prune(kJob, "checkpoint-", 2).ok());
  EXPECT_FALSE(store.Path(absl::StrCat("artifact:", kJob, "/checkpoint-100.pt")).ok());
  EXPECT_FALSE(store.Path(absl::StrCat("artifact:", kJob, "/checkpoint-200.pt")).ok());
  EXPECT_TRUE(store.Path(absl::StrCat("artifact:", kJob, "/checkpoint-300.pt")).ok());
  EXPECT_TRUE(store.Path(absl::StrCat("artifact:", kJob, "/checkpoint-400.pt")).ok());
  std::optional<trainmesh::v1::Artifact> latest = store.Latest(kJob, "checkpoint-");
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->uri(), absl::StrCat("artifact:", kJob, "/checkpoint-400.pt"));
  EXPECT_EQ(latest->step(), 400);
  EXPECT_EQ(latest->size_bytes(), 1);
}

}  // namespace
}  // namespace trainmesh::artifacts
