# Installs a chatws build into a scratch prefix and builds a consumer against
# it, the way a user of the package would. Run by ctest (see CMakeLists.txt):
#   cmake -DBUILD_DIR=... -DWORK_DIR=... -DCONSUMER_DIR=... -DGENERATOR=...
#         -DC_COMPILER=... -DCXX_COMPILER=... -DCONFIG=... -DLIBDIR=lib
#         -DINCLUDEDIR=include -DREADELF=readelf -P run_install_test.cmake
cmake_minimum_required(VERSION 3.20)

set(_prefix "${WORK_DIR}/prefix")
set(_build "${WORK_DIR}/build")

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _out)
  if(NOT _rc EQUAL 0)
    string(REPLACE ";" " " _cmd "${ARGN}")
    message(FATAL_ERROR "failed (${_rc}): ${_cmd}\n${_out}")
  endif()
  set(run_output "${_out}" PARENT_SCOPE)
endfunction()

function(expect cond_msg)
  if(NOT ${ARGN})
    message(FATAL_ERROR "${cond_msg}")
  endif()
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")

# --- 1. install ------------------------------------------------------------
set(_cfg_args "")
if(CONFIG)
  set(_cfg_args --config "${CONFIG}")
endif()
run("${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${_prefix}" ${_cfg_args})

# Exactly one public header, the versioned library chain, the packages.
file(GLOB _headers RELATIVE "${_prefix}/${INCLUDEDIR}" "${_prefix}/${INCLUDEDIR}/*")
expect("installed headers are [${_headers}], expected [chatws.h]" _headers STREQUAL "chatws.h")
set(_lib "${_prefix}/${LIBDIR}")
foreach(_f libchatws.so libchatws.so.0 libchatws.a cmake/chatws/chatwsConfig.cmake
           cmake/chatws/chatwsConfigVersion.cmake cmake/chatws/chatwsTargets.cmake
           pkgconfig/chatws.pc)
  expect("not installed: ${_lib}/${_f}" EXISTS "${_lib}/${_f}")
endforeach()
expect("libchatws.so is not a symlink" IS_SYMLINK "${_lib}/libchatws.so")
expect("libchatws.so.0 is not a symlink" IS_SYMLINK "${_lib}/libchatws.so.0")
file(READ_SYMLINK "${_lib}/libchatws.so.0" _target)
expect("libchatws.so.0 -> ${_target}, expected libchatws.so.0.x.y"
  _target MATCHES "^libchatws\\.so\\.0\\.[0-9]+\\.[0-9]+$")

# --- 2. find_package(chatws) ------------------------------------------------
run("${CMAKE_COMMAND}" -S "${CONSUMER_DIR}" -B "${_build}" -G "${GENERATOR}"
  "-DCMAKE_PREFIX_PATH=${_prefix}" "-DCMAKE_BUILD_TYPE=${CONFIG}"
  "-DCMAKE_C_COMPILER=${C_COMPILER}" "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}"
  "-DCHATWS_SANITIZE=${SANITIZE}")
string(FIND "${run_output}" "from ${_prefix}/" _pos)
expect("the consumer found chatws elsewhere than ${_prefix}:\n${run_output}" _pos GREATER -1)
run("${CMAKE_COMMAND}" --build "${_build}")
run("${_build}/consumer_shared")
expect("consumer_shared said: ${run_output}" run_output MATCHES "chatws ok")
run("${_build}/consumer_static")
expect("consumer_static said: ${run_output}" run_output MATCHES "chatws ok")
# The static consumer carries the engine: it must not load libchatws.so.
run("${READELF}" -d "${_build}/consumer_static")
if(run_output MATCHES "libchatws")
  message(FATAL_ERROR "consumer_static needs libchatws.so:\n${run_output}")
endif()

# --- 3. pkg-config ------------------------------------------------------------
find_program(PKG_CONFIG pkg-config)
if(PKG_CONFIG)
  set(ENV{PKG_CONFIG_PATH} "${_lib}/pkgconfig")
  run("${PKG_CONFIG}" --modversion chatws)
  string(STRIP "${run_output}" _version)
  run("${PKG_CONFIG}" --cflags --libs chatws)
  string(STRIP "${run_output}" _flags)
  separate_arguments(_flags UNIX_COMMAND "${_flags}")
  run("${PKG_CONFIG}" --static --libs chatws) # Requires.private must resolve
  run("${C_COMPILER}" -std=c11 -Wall -Wextra -Werror -o "${WORK_DIR}/consumer_pc"
    "${CONSUMER_DIR}/main.c" ${_flags})
  set(ENV{LD_LIBRARY_PATH} "${_lib}")
  run("${WORK_DIR}/consumer_pc")
  expect("consumer_pc said: ${run_output}" run_output MATCHES "chatws ok ${_version}")
else()
  message(STATUS "pkg-config not found: pkg-config consumer skipped")
endif()

message(STATUS "install test passed (prefix ${_prefix})")
