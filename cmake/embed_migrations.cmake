# Script mode: writes OUT, a C++ file holding the SQL files FILES as migrations.
# Each file is named NNNN_description.sql; NNNN is the version.
set(body "")
string(REPLACE "," ";" FILES "${FILES}")
foreach(f ${FILES})
  get_filename_component(name ${f} NAME_WE)
  string(REGEX MATCH "^([0-9]+)_" _ ${name})
  if(NOT CMAKE_MATCH_1)
    message(FATAL_ERROR "migration ${f} must be named NNNN_description.sql")
  endif()
  math(EXPR version "${CMAKE_MATCH_1} + 0")
  file(READ ${f} sql)
  string(APPEND body "      {${version}, \"${name}\", R\"tmsql(${sql})tmsql\"},\n")
endforeach()
file(WRITE ${OUT}.tmp
"// Generated from SQL migration files; do not edit.
#include <vector>
#include \"libs/pg/migrations.h\"
namespace ${NS} {
const std::vector<trainmesh::pg::Migration>& Migrations() {
  static const auto* const kMigrations = new std::vector<trainmesh::pg::Migration>{
${body}  };
  return *kMigrations;
}
}  // namespace ${NS}
")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
