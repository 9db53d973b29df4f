#include "libs/datasets/frames.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace trainmesh::datasets {
namespace {

constexpr double kPi = 3.14159265358979323846;

// An integer parameter within [lo, hi].
absl::StatusOr<int64_t> Count(const Source& s, const std::string& key, double fallback, double lo,
                              double hi) {
  auto v = s.Number(key, fallback);
  if (!v.ok()) return v.status();
  if (*v < lo || *v > hi || std::floor(*v) != *v) {
    return absl::InvalidArgumentError(absl::StrCat("dataset parameter ", key, " must be an integer in [",
                                                   lo, ", ", hi, "]"));
  }
  return static_cast<int64_t>(*v);
}

uint64_t Le(const std::string& b, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[at + i]);
  return v;
}

absl::StatusOr<Matrix> ParseNpy(const std::string& name, absl::string_view npy) {
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("array ", name, " in the .npz: ", why));
  };
  if (npy.size() < 10 || npy.substr(0, 6) != "\x93NUMPY") return bad("not a .npy array");
  const int major = static_cast<unsigned char>(npy[6]);
  size_t header_len = 0, start = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(npy[8]) | (static_cast<unsigned char>(npy[9]) << 8);
    start = 10;
  } else {
    if (npy.size() < 12) return bad("truncated");
    header_len = Le(std::string(npy.substr(8, 4)), 0, 4);
    start = 12;
  }
  if (start + header_len > npy.size()) return bad("truncated header");
  const std::string header(npy.substr(start, header_len));
  auto field = [&](const std::string& key) -> std::string {
    const size_t k = header.find("'" + key + "'");
    if (k == std::string::npos) return "";
    size_t v = header.find(':', k);
    if (v == std::string::npos) return "";
    ++v;
    while (v < header.size() && header[v] == ' ') ++v;
    if (header[v] == '(') return header.substr(v + 1, header.find(')', v) - v - 1);
    const size_t end = header.find_first_of(",}", v);
    return std::string(absl::StripAsciiWhitespace(header.substr(v, end - v)));
  };
  std::string descr(absl::StripSuffix(absl::StripPrefix(field("descr"), "'"), "'"));
  if (field("fortran_order") != "False") return bad("Fortran order is not supported");
  std::vector<int64_t> shape;
  for (absl::string_view d : absl::StrSplit(field("shape"), ',', absl::SkipWhitespace())) {
    int64_t n = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(d), &n) || n < 0) return bad("bad shape");
    shape.push_back(n);
  }
  if (shape.empty() || shape.size() > 2) return bad("only 1-D and 2-D arrays are supported");
  Matrix m;
  m.rows = shape[0];
  m.cols = shape.size() == 2 ? shape[1] : 1;
  int width = 0;
  if (descr == "<f4" || descr == "<i4") width = 4;
  if (descr == "<f8" || descr == "<i8") width = 8;
  if (width == 0) return bad(absl::StrCat("dtype ", descr, " is not supported (use float32/64, int32/64)"));
  const size_t n = static_cast<size_t>(m.rows * m.cols);
  const absl::string_view body = npy.substr(start + header_len);
  if (body.size() < n * width) return bad("truncated data");
  m.data.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const char* p = body.data() + i * width;
    if (descr == "<f4") {
      std::memcpy(&m.data[i], p, 4);
    } else if (descr == "<f8") {
      double d;
      std::memcpy(&d, p, 8);
      m.data[i] = static_cast<float>(d);
    } else if (descr == "<i4") {
      int32_t v;
      std::memcpy(&v, p, 4);
      m.data[i] = static_cast<float>(v);
    } else {
      int64_t v;
      std::memcpy(&v, p, 8);
      m.data[i] = static_cast<float>(v);
    }
  }
  return m;
}

absl::Status CheckFinite(const Matrix& m, const std::string& what) {
  for (size_t i = 0; i < m.data.size(); ++i) {
    if (!std::isfinite(m.data[i])) {
      return absl::InvalidArgumentError(absl::StrCat(what, " has a missing or non-finite value in row ",
                                                     i / static_cast<size_t>(m.cols) + 1));
    }
  }
  return absl::OkStatus();
}

// Deterministic words for synthetic text: a small world a model can learn.
const char* const kSubjects[] = {"the robot", "the arm", "a gripper", "the agent", "the drone",
                                 "my model", "the planner", "our trainer"};
const char* const kVerbs[] = {"picks up", "moves", "places", "pushes", "scans", "tracks", "stacks",
                              "drops"};
const char* const kAdjectives[] = {"red", "blue", "small", "heavy", "round", "green", "empty", "tall"};
const char* const kObjects[] = {"block", "cup", "box", "ball", "tool", "bottle", "plate", "cube"};
const char* const kPlaces[] = {"on the table", "into the bin", "near the wall", "under the shelf",
                               "beside the door", "onto the tray"};

}  // namespace

const Column* Frame::Find(const std::string& name) const {
  for (const Column& c : columns) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

Frame FromTable(const Table& table) {
  Frame f;
  for (size_t j = 0; j < table.header.size(); ++j) {
    Column c;
    c.name = table.header[j];
    c.numbers.reserve(table.rows.size());
    for (const auto& row : table.rows) {
      const absl::string_view cell = absl::StripAsciiWhitespace(row[j]);
      double v = std::numeric_limits<double>::quiet_NaN();
      if (!cell.empty() && (!absl::SimpleAtod(cell, &v) || !std::isfinite(v))) {
        c.numeric = false;
        break;
      }
      c.numbers.push_back(v);
    }
    if (!c.numeric) {
      c.numbers.clear();
      c.texts.reserve(table.rows.size());
      for (const auto& row : table.rows) c.texts.emplace_back(absl::StripAsciiWhitespace(row[j]));
    }
    f.columns.push_back(std::move(c));
  }
  return f;
}

absl::StatusOr<std::map<std::string, Matrix>> ReadNpz(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  const std::string b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto bad = [](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("not a readable .npz archive: ", why));
  };
  if (b.size() < 22) return bad("too short");
  // End of central directory, then (for zip64) its zip64 twin.
  size_t eocd = std::string::npos;
  for (size_t i = b.size() - 22 + 1; i-- > 0 && b.size() - i < 65558;) {
    if (Le(b, i, 4) == 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd == std::string::npos) return bad("no end of central directory");
  uint64_t entries = Le(b, eocd + 10, 2);
  uint64_t cd = Le(b, eocd + 16, 4);
  if ((cd == 0xFFFFFFFF || entries == 0xFFFF) && eocd >= 20 && Le(b, eocd - 20, 4) == 0x07064b50) {
    const uint64_t z = Le(b, eocd - 20 + 8, 8);
    if (z + 56 > b.size() || Le(b, z, 4) != 0x06064b50) return bad("bad zip64 record");
    entries = Le(b, z + 32, 8);
    cd = Le(b, z + 48, 8);
  }
  std::map<std::string, Matrix> out;
  size_t at = cd;
  for (uint64_t e = 0; e < entries; ++e) {
    if (at + 46 > b.size() || Le(b, at, 4) != 0x02014b50) return bad("bad central directory");
    const uint64_t method = Le(b, at + 10, 2);
    uint64_t size = Le(b, at + 24, 4);
    uint64_t csize = Le(b, at + 20, 4);
    uint64_t local = Le(b, at + 42, 4);
    const size_t name_len = Le(b, at + 28, 2), extra_len = Le(b, at + 30, 2),
                 comment_len = Le(b, at + 32, 2);
    if (at + 46 + name_len + extra_len > b.size()) return bad("truncated");
    std::string name = b.substr(at + 46, name_len);
    // Zip64 extra field: the 64-bit values of the fields that are 0xFFFFFFFF.
    for (size_t x = at + 46 + name_len; x + 4 <= at + 46 + name_len + extra_len;) {
      const uint64_t id = Le(b, x, 2), len = Le(b, x + 2, 2);
      if (id == 1) {
        size_t v = x + 4;
        if (size == 0xFFFFFFFF) size = Le(b, v, 8), v += 8;
        if (csize == 0xFFFFFFFF) csize = Le(b, v, 8), v += 8;
        if (local == 0xFFFFFFFF) local = Le(b, v, 8);
      }
      x += 4 + len;
    }
    at += 46 + name_len + extra_len + comment_len;
    if (method != 0) {
      return absl::InvalidArgumentError(
          "compressed .npz archives (numpy.savez_compressed) are not supported; save with numpy.savez");
    }
    if (local + 30 > b.size() || Le(b, local, 4) != 0x04034b50) return bad("bad local header");
    const size_t data = local + 30 + Le(b, local + 26, 2) + Le(b, local + 28, 2);
    if (data + size > b.size()) return bad("truncated entry");
    if (absl::EndsWith(name, ".npy")) name.resize(name.size() - 4);
    auto m = ParseNpy(name, absl::string_view(b).substr(data, size));
    if (!m.ok()) return m.status();
    out[name] = std::move(*m);
  }
  return out;
}

absl::StatusOr<Demonstrations> ReadDemonstrations(const std::string& path) {
  Demonstrations d;
  if (absl::EndsWith(path, ".npz")) {
    auto arrays = ReadNpz(path);
    if (!arrays.ok()) return arrays.status();
    auto obs = arrays->find("obs"), act = arrays->find("act");
    if (obs == arrays->end() || act == arrays->end()) {
      return absl::InvalidArgumentError("the .npz needs arrays named \"obs\" and \"act\"");
    }
    d.obs = std::move(obs->second);
    d.act = std::move(act->second);
  } else {
    auto table = ReadCsv(path);
    if (!table.ok()) return table.status();
    const Frame f = FromTable(*table);
    std::vector<const Column*> obs, act;
    for (const Column& c : f.columns) {
      if (absl::StartsWith(c.name, "obs")) obs.push_back(&c);
      if (absl::StartsWith(c.name, "act")) act.push_back(&c);
    }
    if (obs.empty() || act.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the CSV needs observation columns named obs_* and action columns named act_*; it has ",
          absl::StrJoin(table->header, ", ")));
    }
    auto fill = [&](const std::vector<const Column*>& cols, Matrix* m) -> absl::Status {
      m->rows = static_cast<int64_t>(f.rows());
      m->cols = static_cast<int64_t>(cols.size());
      m->data.resize(static_cast<size_t>(m->rows * m->cols));
      for (size_t j = 0; j < cols.size(); ++j) {
        if (!cols[j]->numeric) {
          return absl::InvalidArgumentError(absl::StrCat("column ", cols[j]->name, " is not numeric"));
        }
        for (size_t i = 0; i < f.rows(); ++i) m->data[i * cols.size() + j] = cols[j]->numbers[i];
      }
      return absl::OkStatus();
    };
    if (auto s = fill(obs, &d.obs); !s.ok()) return s;
    if (auto s = fill(act, &d.act); !s.ok()) return s;
  }
  if (d.obs.rows != d.act.rows) {
    return absl::InvalidArgumentError(
        absl::StrCat("obs has ", d.obs.rows, " rows but act has ", d.act.rows));
  }
  if (d.obs.rows < 2) return absl::InvalidArgumentError("the dataset needs at least 2 rows");
  if (auto s = CheckFinite(d.obs, "obs"); !s.ok()) return s;
  if (auto s = CheckFinite(d.act, "act"); !s.ok()) return s;
  return d;
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
      const double features[8] = {dx, dy, std::cos(q1), std::sin(q1), std::cos(q2), std::sin(q2), tx, ty};
      for (int64_t k = 0; k < *obs_dim; ++k) {
        d.obs.data.push_back(static_cast<float>(k < 8 ? features[k] : n01(rng)));  // extra: distractors
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
        const double energy = 0.5 * m * l * l * theta_dot * theta_dot + m * g * l * (std::cos(theta) - 1.0);
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
  return absl::InvalidArgumentError(
      absl::StrCat("unknown synthetic dataset ", source.generator, " for demonstrations (reach, pendulum)"));
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
  return absl::InvalidArgumentError(
      absl::StrCat("unknown synthetic dataset ", source.generator, " for tables (blobs, friedman)"));
}

absl::StatusOr<std::string> SyntheticText(const Source& source) {
  if (source.generator != "text") {
    return absl::InvalidArgumentError(absl::StrCat("unknown synthetic dataset ", source.generator,
                                                   " for text (text)"));
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
