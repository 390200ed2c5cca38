# cmake -DLIB=libchatws.so -DHEADER=chatws.h -DCLIENT=<C program> -DNM=nm
#       -DREADELF=readelf -DSONAME=libchatws.so.0 -P check_abi.cmake
#
# 1. `nm -D --defined-only` shows exactly the functions chatws.h declares
#    (CHATWS_API), nothing missing and nothing else. The only other
#    names a version-scripted shared object may legitimately define are the
#    version node itself (CHATWS_0, an absolute symbol) and the linker's
#    section markers/entry points that some toolchains leave global.
# 2. The SONAME is libchatws.so.<major>.
# 3. CLIENT (a C test linked with chatws::chatws) needs libchatws.so.<major>
#    and none of the engine's private dependencies.
cmake_minimum_required(VERSION 3.20)

set(_allowed_extra CHATWS_0 _init _fini _edata _end __bss_start)
set(_failures "")

execute_process(COMMAND "${NM}" -D --defined-only "${LIB}"
  OUTPUT_VARIABLE _nm RESULT_VARIABLE _rc ERROR_VARIABLE _err)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "nm failed (${_rc}): ${_err}")
endif()
string(REPLACE "\n" ";" _lines "${_nm}")
set(_api_count 0)
set(_exported "")
foreach(_line IN LISTS _lines)
  if(_line STREQUAL "")
    continue()
  endif()
  # "<address> <type> <name>[@@VERSION]"
  if(NOT _line MATCHES "^[0-9a-fA-F]* *([A-Za-z]) ([^ @]+)")
    list(APPEND _failures "unparsed nm line: ${_line}")
    continue()
  endif()
  set(_name "${CMAKE_MATCH_2}")
  if(_name MATCHES "^chatws_[a-z0-9_]+$")
    math(EXPR _api_count "${_api_count} + 1")
    list(APPEND _exported "${_name}")
  elseif(NOT _name IN_LIST _allowed_extra)
    list(APPEND _failures "exported symbol outside the C API: ${_line}")
  endif()
endforeach()
# The functions the header declares: "CHATWS_API <type> chatws_name(".
file(STRINGS "${HEADER}" _decls REGEX "^CHATWS_API .*chatws_[a-z0-9_]+\\(")
set(_declared "")
foreach(_d IN LISTS _decls)
  if(_d MATCHES "(chatws_[a-z0-9_]+)\\(")
    list(APPEND _declared "${CMAKE_MATCH_1}")
  endif()
endforeach()
list(LENGTH _declared _declared_count)
if(_declared_count LESS 10)
  list(APPEND _failures "found only ${_declared_count} declarations in ${HEADER}")
endif()
foreach(_f IN LISTS _declared)
  if(NOT _f IN_LIST _exported)
    list(APPEND _failures "declared in chatws.h but not exported: ${_f}")
  endif()
endforeach()
foreach(_f IN LISTS _exported)
  if(NOT _f IN_LIST _declared)
    list(APPEND _failures "exported but not declared in chatws.h: ${_f}")
  endif()
endforeach()

execute_process(COMMAND "${READELF}" -d "${LIB}" OUTPUT_VARIABLE _dyn RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0 OR NOT _dyn MATCHES "\\(SONAME\\)[^\n]*\\[${SONAME}\\]")
  list(APPEND _failures "SONAME of ${LIB} is not ${SONAME}:\n${_dyn}")
endif()

if(CLIENT)
  execute_process(COMMAND "${READELF}" -d "${CLIENT}" OUTPUT_VARIABLE _dyn RESULT_VARIABLE _rc)
  string(REGEX MATCHALL "\\(NEEDED\\)[^\n]*\\[[^]]*\\]" _needed "${_dyn}")
  if(NOT _needed MATCHES "\\[${SONAME}\\]")
    list(APPEND _failures "${CLIENT} does not need ${SONAME}: ${_needed}")
  endif()
  foreach(_private stdc\\+\\+ crypto ssl sqlite3 simdjson z hiredis)
    if(_needed MATCHES "\\[lib${_private}\\.so")
      list(APPEND _failures "${CLIENT} links a private dependency of libchatws: ${_needed}")
    endif()
  endforeach()
endif()

if(_failures)
  string(REPLACE ";" "\n  " _msg "${_failures}")
  message(FATAL_ERROR "ABI check failed:\n  ${_msg}")
endif()
message(STATUS "ABI check passed: ${_api_count} chatws_* symbols, SONAME ${SONAME}")
