# Small helpers in the spirit of Abseil's absl_cc_library: explicit sources and
# dependencies, warnings as errors on project code only.

set(TRAINMESH_WARNINGS -Wall -Wextra -Werror -Wno-unused-parameter
                       -Wno-missing-field-initializers)

# trainmesh_cc_library(NAME SRCS ... DEPS ... [HDRS ...])
# Creates target trainmesh_<NAME> with alias trainmesh::<NAME>.
function(trainmesh_cc_library)
  cmake_parse_arguments(TM "" "NAME" "SRCS;HDRS;DEPS" ${ARGN})
  set(target trainmesh_${TM_NAME})
  if(TM_SRCS)
    add_library(${target} STATIC ${TM_SRCS} ${TM_HDRS})
    target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR}
                                                ${PROJECT_BINARY_DIR})
    target_compile_options(${target} PRIVATE ${TRAINMESH_WARNINGS})
    target_link_libraries(${target} PUBLIC ${TM_DEPS})
  else()
    add_library(${target} INTERFACE)
    target_include_directories(${target} INTERFACE ${PROJECT_SOURCE_DIR}
                                                   ${PROJECT_BINARY_DIR})
    target_link_libraries(${target} INTERFACE ${TM_DEPS})
  endif()
  add_library(trainmesh::${TM_NAME} ALIAS ${target})
endfunction()

# trainmesh_cc_binary(NAME SRCS ... DEPS ...)
function(trainmesh_cc_binary)
  cmake_parse_arguments(TM "" "NAME" "SRCS;DEPS" ${ARGN})
  add_executable(${TM_NAME} ${TM_SRCS})
  target_include_directories(${TM_NAME} PRIVATE ${PROJECT_SOURCE_DIR}
                                                ${PROJECT_BINARY_DIR})
  target_compile_options(${TM_NAME} PRIVATE ${TRAINMESH_WARNINGS})
  target_link_libraries(${TM_NAME} PRIVATE ${TM_DEPS})
endfunction()

# trainmesh_cc_benchmark(NAME SRCS ... DEPS ...): a Google Benchmark binary, a
# development tool built with the tests (a release image builds without either).
function(trainmesh_cc_benchmark)
  if(NOT BUILD_TESTING)
    return()
  endif()
  cmake_parse_arguments(TM "" "NAME" "SRCS;DEPS" ${ARGN})
  find_package(benchmark CONFIG REQUIRED)
  trainmesh_cc_binary(NAME ${TM_NAME} SRCS ${TM_SRCS} DEPS ${TM_DEPS} benchmark::benchmark)
endfunction()

# trainmesh_cc_test(NAME n DEPS ... [SRCS ...] [LABELS ...]), built from n.cc
# unless SRCS says otherwise. One CTest test per binary, so a binary's tests
# share the throwaway Postgres cluster it starts (tests labelled "pg") instead
# of starting one per case.
function(trainmesh_cc_test)
  if(NOT BUILD_TESTING)
    return()
  endif()
  cmake_parse_arguments(TM "" "NAME" "SRCS;DEPS;LABELS" ${ARGN})
  if(NOT TM_SRCS)
    set(TM_SRCS ${TM_NAME}.cc)
  endif()
  add_executable(${TM_NAME} ${TM_SRCS})
  target_include_directories(${TM_NAME} PRIVATE ${PROJECT_SOURCE_DIR}
                                                ${PROJECT_BINARY_DIR})
  target_compile_options(${TM_NAME} PRIVATE ${TRAINMESH_WARNINGS})
  target_link_libraries(${TM_NAME} PRIVATE ${TM_DEPS} GTest::gmock GTest::gtest_main)
  add_test(NAME ${TM_NAME} COMMAND ${TM_NAME})
  set_tests_properties(${TM_NAME} PROPERTIES
    LABELS "${TM_LABELS}"
    ENVIRONMENT "TRAINMESH_SOURCE_DIR=${PROJECT_SOURCE_DIR}"
    TIMEOUT 600)
endfunction()

# trainmesh_embed_migrations(TARGET DIR NAMESPACE)
# Compiles every DIR/NNNN_name.sql into a generated .cc that defines
# `const std::vector<trainmesh::pg::Migration>& <NAMESPACE>::Migrations()`,
# so a binary carries its own schema and needs no files at run time.
function(trainmesh_embed_migrations target dir ns)
  file(GLOB sql_files CONFIGURE_DEPENDS ${dir}/*.sql)
  list(SORT sql_files)
  set(out ${CMAKE_CURRENT_BINARY_DIR}/${target}_migrations.cc)
  string(REPLACE ";" "," sql_list "${sql_files}")
  add_custom_command(
    OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DOUT=${out} -DNS=${ns} "-DFILES=${sql_list}"
            -P ${PROJECT_SOURCE_DIR}/cmake/embed_migrations.cmake
    DEPENDS ${sql_files} ${PROJECT_SOURCE_DIR}/cmake/embed_migrations.cmake
    COMMENT "Embedding SQL migrations for ${target}"
    VERBATIM)
  target_sources(${target} PRIVATE ${out})
endfunction()

# trainmesh_service(NAME n SRCS ... HDRS ... DEPS ...): one service of the mesh.
# The library trainmesh::<n>_service (its SQL migrations from ./migrations
# embedded as trainmesh::<n>::Migrations()) and the binary <n> built from
# main.cc with what every service main uses (flags, database, identity).
function(trainmesh_service)
  cmake_parse_arguments(S "" "NAME" "SRCS;HDRS;DEPS" ${ARGN})
  trainmesh_cc_library(NAME ${S_NAME}_service SRCS ${S_SRCS} HDRS ${S_HDRS} DEPS ${S_DEPS})
  trainmesh_embed_migrations(trainmesh_${S_NAME}_service ${CMAKE_CURRENT_SOURCE_DIR}/migrations
                             trainmesh::${S_NAME})
  trainmesh_cc_binary(NAME ${S_NAME} SRCS main.cc
    DEPS trainmesh::${S_NAME}_service trainmesh::service_database trainmesh::identity_flags
         trainmesh::service_main)
endfunction()

# trainmesh_cc_fuzz(NAME n DEPS ... [SRCS ...]): a libFuzzer target built from
# n.cc (or SRCS), only in the clang build configured with -DTRAINMESH_FUZZ=ON
# (tools/test runs each briefly).
function(trainmesh_cc_fuzz)
  cmake_parse_arguments(F "" "NAME" "SRCS;DEPS" ${ARGN})
  if(NOT TRAINMESH_FUZZ)
    return()
  endif()
  if(NOT F_SRCS)
    set(F_SRCS ${F_NAME}.cc)
  endif()
  add_executable(${F_NAME} ${F_SRCS})
  target_include_directories(${F_NAME} PRIVATE ${PROJECT_SOURCE_DIR})
  target_compile_options(${F_NAME} PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_options(${F_NAME} PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(${F_NAME} PRIVATE ${F_DEPS})
endfunction()
