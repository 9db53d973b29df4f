// Tabular and array data in memory (torch-free): what the recipes read once a
// dataset is resolved (the types and parsers are in formats.h). Columns are
// numeric or text; matrices are row-major float32. Synthetic generators are
// deterministic functions of their parameters (including `seed`), so a
// dataset URL names one dataset.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "libs/datasets/datasets.h"
#include "libs/datasets/formats.h"

namespace trainmesh::datasets {

// From a CSV whose columns are named obs_* and act_*, or an .npz archive
// (numpy.savez, uncompressed) with arrays "obs" and "act".
absl::StatusOr<Demonstrations> ReadDemonstrations(const std::string& path);

// The named arrays of an uncompressed .npz file (see ParseNpz); NOT_FOUND
// when it cannot be read.
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
