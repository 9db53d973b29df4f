#include "libs/datasets/frames.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace trainmesh::datasets {
namespace {

constexpr double kPi = 3.14159265358979323846;

// An integer parameter within [lo, hi].
absl::StatusOr<int64_t> Count(const Source& s, const std::string& key, double fallback, double lo,
                              double hi) {
  auto v = s.Number(key, fallback);
  if (!v.ok()) return v.status();
  if (*v < lo || *v > hi || std::floor(*v) != *v) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset parameter ", key, " must be an integer in [", lo, ", ", hi, "]"));
  }
  return static_cast<int64_t>(*v);
}

// Deterministic words for synthetic text: a small world a model can learn.
const char* const kSubjects[] = {"the robot", "the arm",  "a gripper",   "the agent",
                                 "the drone", "my model", "the planner", "our trainer"};
const char* const kVerbs[] = {"picks up", "moves",  "places", "pushes",
                              "scans",    "tracks", "stacks", "drops"};
const char* const kAdjectives[] = {"red",   "blue",  "small", "heavy",
                                   "round", "green", "empty", "tall"};
const char* const kObjects[] = {"block", "cup", "box", "ball", "tool", "bottle", "plate", "cube"};
const char* const kPlaces[] = {"on the table",    "into the bin",    "near the wall",
                               "under the shelf", "beside the door", "onto the tray"};

}  // namespace

absl::StatusOr<std::map<std::string, Matrix>> ReadNpz(const std::string& path) {
  auto bytes = ReadText(path, std::numeric_limits<int64_t>::max());
  if (!bytes.ok()) return bytes.status();
  return ParseNpz(*bytes);
}

absl::StatusOr<Demonstrations> ReadDemonstrations(const std::string& path) {
  if (absl::EndsWith(path, ".npz")) {
    auto arrays = ReadNpz(path);
    if (!arrays.ok()) return arrays.status();
    return DemonstrationsFromArrays(std::move(*arrays));
  }
  auto table = ReadCsv(path);
  if (!table.ok()) return table.status();
  return DemonstrationsFromTable(*table);
}

absl::StatusOr<Demonstrations> SyntheticDemonstrations(const Source& source) {
  auto samples = Count(source, "samples", 20000, 2, 5e7);
  auto seed = Count(source, "seed", 0, 0, 2147483647);
  auto noise = source.Number("noise", 0.01);
  if (!samples.ok()) return samples.status();
  if (!seed.ok()) return seed.status();
  if (!noise.ok()) return noise.status();
  std::mt19937_64 rng(static_cast<uint64_t>(*seed) * 0x9E3779B97F4A7C15ULL + 17);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::normal_distribution<double> n01(0.0, 1.0);
  Demonstrations d;
  const int64_t rows = *samples;
  if (source.generator == "reach") {
    auto obs_dim = Count(source, "obs_dim", 8, 4, 256);
    auto act_dim = Count(source, "act_dim", 2, 2, 2);
    if (!obs_dim.ok()) return obs_dim.status();
    if (!act_dim.ok()) return act_dim.status();
    constexpr double l1 = 1.0, l2 = 0.8, damping = 0.1, max_step = 0.2;
    d.obs = {rows, *obs_dim, {}};
    d.act = {rows, 2, {}};
    d.obs.data.reserve(static_cast<size_t>(rows * *obs_dim));
    d.act.data.reserve(static_cast<size_t>(rows * 2));
    for (int64_t i = 0; i < rows; ++i) {
      const double q1 = kPi * u(rng), q2 = kPi * u(rng);
      const double r = 0.3 + (l1 + l2 - 0.4) * (0.5 + 0.5 * u(rng)), a = kPi * u(rng);
      const double tx = r * std::cos(a), ty = r * std::sin(a);
      const double ex = l1 * std::cos(q1) + l2 * std::cos(q1 + q2);
      const double ey = l1 * std::sin(q1) + l2 * std::sin(q1 + q2);
      const double dx = tx - ex, dy = ty - ey;
      // Jacobian of the end effector; the expert takes dq = J^T (J J^T + λ²I)^-1 e.
      const double j11 = -l1 * std::sin(q1) - l2 * std::sin(q1 + q2), j12 = -l2 * std::sin(q1 + q2);
      const double j21 = l1 * std::cos(q1) + l2 * std::cos(q1 + q2), j22 = l2 * std::cos(q1 + q2);
      const double a11 = j11 * j11 + j12 * j12 + damping * damping, a12 = j11 * j21 + j12 * j22;
      const double a22 = j21 * j21 + j22 * j22 + damping * damping;
      const double det = a11 * a22 - a12 * a12;
      const double w1 = (a22 * dx - a12 * dy) / det, w2 = (-a12 * dx + a11 * dy) / det;
      double dq1 = j11 * w1 + j21 * w2, dq2 = j12 * w1 + j22 * w2;
      const double norm = std::sqrt(dq1 * dq1 + dq2 * dq2);
      if (norm > max_step) dq1 *= max_step / norm, dq2 *= max_step / norm;
      const double features[8] = {dx,           dy,           std::cos(q1), std::sin(q1),
                                  std::cos(q2), std::sin(q2), tx,           ty};
      for (int64_t k = 0; k < *obs_dim; ++k) {
        d.obs.data.push_back(
            static_cast<float>(k < 8 ? features[k] : n01(rng)));  // extra: distractors
      }
      d.act.data.push_back(static_cast<float>(dq1 + *noise * n01(rng)));
      d.act.data.push_back(static_cast<float>(dq2 + *noise * n01(rng)));
    }
    return d;
  }
  if (source.generator == "pendulum") {
    constexpr double g = 10.0, m = 1.0, l = 1.0, max_torque = 2.0;
    d.obs = {rows, 3, {}};
    d.act = {rows, 1, {}};
    for (int64_t i = 0; i < rows; ++i) {
      const double theta = kPi * u(rng), theta_dot = 8.0 * u(rng);
      double torque;
      if (std::cos(theta) > 0.85) {
        torque = -(10.0 * theta + 2.0 * theta_dot);  // PD about upright (theta = 0)
      } else {
        const double energy =
            0.5 * m * l * l * theta_dot * theta_dot + m * g * l * (std::cos(theta) - 1.0);
        const double pump = theta_dot * std::cos(theta);
        torque = -1.5 * energy * (pump >= 0 ? 1.0 : -1.0);
      }
      torque = std::clamp(torque, -max_torque, max_torque) + *noise * n01(rng);
      d.obs.data.push_back(static_cast<float>(std::cos(theta)));
      d.obs.data.push_back(static_cast<float>(std::sin(theta)));
      d.obs.data.push_back(static_cast<float>(theta_dot));
      d.act.data.push_back(static_cast<float>(torque));
    }
    return d;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown synthetic dataset ", source.generator,
                                                 " for demonstrations (reach, pendulum)"));
}

absl::StatusOr<Frame> SyntheticFrame(const Source& source) {
  auto rows = Count(source, "rows", 10000, 2, 5e7);
  auto seed = Count(source, "seed", 0, 0, 2147483647);
  if (!rows.ok()) return rows.status();
  if (!seed.ok()) return seed.status();
  std::mt19937_64 rng(static_cast<uint64_t>(*seed) * 0x9E3779B97F4A7C15ULL + 29);
  std::normal_distribution<double> n01(0.0, 1.0);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  Frame f;
  if (source.generator == "blobs") {
    auto features = Count(source, "features", 16, 1, 4096);
    auto classes = Count(source, "classes", 4, 2, 1000);
    auto spread = source.Number("spread", 1.0);
    if (!features.ok()) return features.status();
    if (!classes.ok()) return classes.status();
    if (!spread.ok()) return spread.status();
    std::vector<double> centers(static_cast<size_t>(*classes * *features));
    for (double& c : centers) c = 2.0 * n01(rng);
    f.columns.resize(static_cast<size_t>(*features) + 1);
    for (int64_t j = 0; j < *features; ++j) f.columns[j].name = absl::StrCat("x", j);
    Column& label = f.columns.back();
    label.name = "label";
    label.numeric = false;
    std::uniform_int_distribution<int64_t> pick(0, *classes - 1);
    for (int64_t i = 0; i < *rows; ++i) {
      const int64_t k = pick(rng);
      for (int64_t j = 0; j < *features; ++j) {
        f.columns[j].numbers.push_back(centers[k * *features + j] + *spread * n01(rng));
      }
      label.texts.push_back(absl::StrCat("class_", k));
    }
    return f;
  }
  if (source.generator == "friedman") {
    auto features = Count(source, "features", 10, 5, 4096);
    auto noise = source.Number("noise", 1.0);
    if (!features.ok()) return features.status();
    if (!noise.ok()) return noise.status();
    f.columns.resize(static_cast<size_t>(*features) + 1);
    for (int64_t j = 0; j < *features; ++j) f.columns[j].name = absl::StrCat("x", j);
    f.columns.back().name = "y";
    std::vector<double> x(static_cast<size_t>(*features));
    for (int64_t i = 0; i < *rows; ++i) {
      for (int64_t j = 0; j < *features; ++j) {
        x[j] = u01(rng);
        f.columns[j].numbers.push_back(x[j]);
      }
      const double y = 10 * std::sin(kPi * x[0] * x[1]) + 20 * (x[2] - 0.5) * (x[2] - 0.5) +
                       10 * x[3] + 5 * x[4] + *noise * n01(rng);
      f.columns.back().numbers.push_back(y);
    }
    return f;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown synthetic dataset ", source.generator,
                                                 " for tables (blobs, friedman)"));
}

absl::StatusOr<std::string> SyntheticText(const Source& source) {
  if (source.generator != "text") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown synthetic dataset ", source.generator, " for text (text)"));
  }
  auto bytes = Count(source, "bytes", 2000000, 1000, 1e9);
  auto seed = Count(source, "seed", 0, 0, 2147483647);
  if (!bytes.ok()) return bytes.status();
  if (!seed.ok()) return seed.status();
  std::mt19937_64 rng(static_cast<uint64_t>(*seed) * 0x9E3779B97F4A7C15ULL + 41);
  auto pick = [&](const auto& words) {
    return words[std::uniform_int_distribution<size_t>(0, std::size(words) - 1)(rng)];
  };
  std::string text;
  text.reserve(static_cast<size_t>(*bytes) + 128);
  int64_t sentence = 0;
  while (static_cast<int64_t>(text.size()) < *bytes) {
    absl::StrAppend(&text, pick(kSubjects), " ", pick(kVerbs), " the ", pick(kAdjectives), " ",
                    pick(kObjects), " ", pick(kPlaces));
    if (rng() % 3 == 0) absl::StrAppend(&text, " and then ", pick(kVerbs), " it again");
    absl::StrAppend(&text, ++sentence % 5 == 0 ? ".\n" : ". ");
  }
  text.resize(static_cast<size_t>(*bytes));
  return text;
}

}  // namespace trainmesh::datasets
