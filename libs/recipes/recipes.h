// The recipe registry (torch-free): which kinds of training the mesh runs and
// the typed hyperparameter schema of each. The jobs service validates against
// it and serves it (ListRecipes) so forms can be generated from it; the
// trainer reads the same names.
#pragma once

#include <vector>

#include "absl/strings/string_view.h"
#include "trainmesh/v1/recipes.pb.h"

namespace trainmesh::recipes {

inline constexpr absl::string_view kMlpPolicy = "mlp-policy";
inline constexpr absl::string_view kLoraLm = "lora-lm";
inline constexpr absl::string_view kTabular = "tabular";
inline constexpr absl::string_view kScript = "script";

// All recipes, in a stable order.
const std::vector<trainmesh::v1::Recipe>& Recipes();

// nullptr when there is no such recipe.
const trainmesh::v1::Recipe* FindRecipe(absl::string_view name);

// The synthetic dataset generators a recipe reads (synthetic://<name>?…).
std::vector<std::string> SyntheticDatasets(absl::string_view recipe);

}  // namespace trainmesh::recipes
