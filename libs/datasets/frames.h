// Tabular and array data in memory (torch-free): what the recipes read once a
// dataset is resolved. Columns are numeric or text; matrices are row-major
// float32. Synthetic generators are deterministic functions of their
// parameters (including `seed`), so a dataset URL names one dataset.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "libs/datasets/datasets.h"

namespace trainmesh::datasets {

struct Column {
  std::string name;
  bool numeric = true;
  std::vector<double> numbers;      // when numeric (NaN for an empty cell)
  std::vector<std::string> texts;   // when not
  size_t size() const { return numeric ? numbers.size() : texts.size(); }
};

struct Frame {
  std::vector<Column> columns;
  size_t rows() const { return columns.empty() ? 0 : columns[0].size(); }
  // nullptr when absent.
  const Column* Find(const std::string& name) const;
};

// A column is numeric when every non-empty cell parses as a number.
Frame FromTable(const Table& table);

struct Matrix {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<float> data;  // row-major
};

// Observation/action pairs for behaviour cloning.
struct Demonstrations {
  Matrix obs;
  Matrix act;
};

// From a CSV whose columns are named obs_* and act_*, or an .npz archive
// (numpy.savez, uncompressed) with arrays "obs" and "act".
absl::StatusOr<Demonstrations> ReadDemonstrations(const std::string& path);

// The named arrays of an uncompressed .npz (float32/float64/int32/int64
// little-endian, C order, 1-D or 2-D); 1-D arrays become one column.
absl::StatusOr<std::map<std::string, Matrix>> ReadNpz(const std::string& path);

// synthetic://reach?samples=&obs_dim=&noise=&seed= — a planar two-link arm
// reaching for targets: the action is the damped-least-squares joint step an
// expert controller takes toward the target.
// synthetic://pendulum?samples=&seed= — pendulum swing-up and balance: torque
// from an energy-shaping controller, switching to PD near upright.
absl::StatusOr<Demonstrations> SyntheticDemonstrations(const Source& source);

// synthetic://blobs?rows=&features=&classes=&seed= — Gaussian clusters (label column "label").
// synthetic://friedman?rows=&features=&noise=&seed= — Friedman #1 regression (column "y").
absl::StatusOr<Frame> SyntheticFrame(const Source& source);

// synthetic://text?bytes=&seed= — English-like sentences from a small grammar.
absl::StatusOr<std::string> SyntheticText(const Source& source);

}  // namespace trainmesh::datasets
