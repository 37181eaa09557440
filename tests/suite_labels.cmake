# Run by ctest (TEST_INCLUDE_FILES, see idemq_discover_tests): labels the
# test cases of IDEMQ_SUITE_BINARY's doctest suite "concurrency" with
# IDEMQ_SUITE_LABEL and "concurrency".
if(NOT EXISTS "${IDEMQ_SUITE_BINARY}")
  return()  # not built yet: doctest's include file says so already
endif()
execute_process(COMMAND "${IDEMQ_SUITE_BINARY}" --test-suite=concurrency --list-test-cases --no-version
                RESULT_VARIABLE result OUTPUT_VARIABLE listing ERROR_VARIABLE error)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "${IDEMQ_SUITE_BINARY} --list-test-cases failed: ${error}")
endif()
string(REPLACE "\n" ";" lines "${listing}")
foreach(line IN LISTS lines)
  if(line STREQUAL "" OR line MATCHES "^===" OR line MATCHES "^\\[doctest\\] ")
    continue()
  endif()
  set_tests_properties("${line}" PROPERTIES LABELS "${IDEMQ_SUITE_LABEL};concurrency")
endforeach()
