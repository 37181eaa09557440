# Fails when a doctest test case's name has a character that
# doctest_discover_tests cannot carry into a ctest name: a ';' splits the
# name, and the ctest entry then matches no test case, runs nothing and
# passes. (Found: four tests that had never run.)
foreach(binary IN LISTS BINARIES)
  execute_process(COMMAND "${binary}" --list-test-cases --no-version RESULT_VARIABLE result OUTPUT_VARIABLE listing
                  ERROR_VARIABLE error)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "${binary} --list-test-cases failed: ${error}")
  endif()
  string(REPLACE ";" "<SEMICOLON>" listing "${listing}")
  string(REPLACE "\n" ";" lines "${listing}")
  foreach(line IN LISTS lines)
    if(line MATCHES "<SEMICOLON>")
      string(REPLACE "<SEMICOLON>" ";" line "${line}")
      string(APPEND bad "  ${binary}: ${line}\n")
    endif()
  endforeach()
endforeach()
if(bad)
  message(FATAL_ERROR "test case names with ';' (ctest would run none of them; use ':' or ','):\n${bad}")
endif()
