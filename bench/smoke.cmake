# Runs idemq-bench on a few hundred messages and checks that it wrote its JSON
# with every scenario in it; then the scenarios at scale (soak, replay, inbox)
# at a few hundred messages and rows. The relay's sustained load (6e) is left
# out: it takes minutes by design.
file(REMOVE "${OUT}")
execute_process(COMMAND "${BENCH}" --messages 300 --concurrency 2 --duplicates 30 --relay-latency-rates 200
                        --relay-latency-seconds 0.5 --json "${OUT}"
                RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "idemq-bench failed: ${result}")
endif()
file(READ "${OUT}" json)
string(JSON scenarios LENGTH "${json}" results)
if(scenarios LESS 10)
  message(FATAL_ERROR "idemq-bench wrote ${scenarios} results, expected at least 10")
endif()
foreach(scenario "6a raw publish" "6b relay throughput" "6c relay latency" "6d chain" "7 loop CPU"
                 "8 idemq group commit of 10" "8 group 64 latency")
  string(FIND "${json}" "\"${scenario}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "idemq-bench wrote no result for scenario '${scenario}'")
  endif()
endforeach()
foreach(ratio group_commit_over_per_message per_message_over_db_ceiling batch100_over_broker_ceiling
              per_message_over_bare_pipeline)
  string(JSON value ERROR_VARIABLE missing GET "${json}" ratios ${ratio})
  if(missing)
    message(FATAL_ERROR "idemq-bench wrote no ratios.${ratio}")
  endif()
endforeach()
message(STATUS "idemq-bench wrote ${scenarios} results")

file(REMOVE "${OUT}.scale")
execute_process(COMMAND "${BENCH}" --scenarios soak,replay,inbox --messages 200 --concurrency 2 --soak-messages 300
                        --soak-rate 300 --replay-messages 300 --inbox-rows 5000 --json "${OUT}.scale"
                RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "idemq-bench (at scale) failed: ${result}")
endif()
file(READ "${OUT}.scale" json)
foreach(ratio soak_rss_growth replay_rss_growth large_inbox_per_message large_inbox_batch100)
  string(JSON value ERROR_VARIABLE missing GET "${json}" ratios ${ratio})
  if(missing)
    message(FATAL_ERROR "idemq-bench wrote no ratios.${ratio}")
  endif()
endforeach()
