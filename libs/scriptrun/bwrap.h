// The bubblewrap command line of a sandboxed script (internal to
// libs/scriptrun): namespaces, the read-only system, the job's own folders
// and nothing else of the host.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "libs/scriptrun/script.h"

namespace trainmesh::scriptrun {

// Where bwrap finds each of the job's own paths: the path itself, or its
// staged view (see Stage in script.cc).
using Sources = std::map<std::string, std::string>;

// bwrap's argv for `o`: it reports the sandboxed child on `info_fd` and waits
// on `block_fd` before running the command.
std::vector<std::string> BwrapArgs(const ScriptOptions& o, const Sources& from, int info_fd,
                                   int block_fd);

}  // namespace trainmesh::scriptrun
