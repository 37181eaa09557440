# Runs idemq-bench on a few hundred messages and checks that it wrote its JSON.
file(REMOVE "${OUT}")
execute_process(COMMAND "${BENCH}" --messages 300 --concurrency 2 --duplicates 30 --json "${OUT}"
                RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "idemq-bench failed: ${result}")
endif()
file(READ "${OUT}" json)
string(JSON scenarios LENGTH "${json}" results)
if(scenarios LESS 5)
  message(FATAL_ERROR "idemq-bench wrote ${scenarios} results, expected at least 5")
endif()
message(STATUS "idemq-bench wrote ${scenarios} results")
