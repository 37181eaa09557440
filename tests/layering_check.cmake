# Fails when the core (everything in framework/ but src/cli) or
# idemq::testing includes from src/cli or CLI11: the core library must build
# and link without them (docs/decisions.md, "The CLI is its own library").
execute_process(COMMAND git -C "${SOURCE}" grep -n -E "#include [<\"](cli|CLI)/" -- framework/include framework/src
                        ":!framework/src/cli" RESULT_VARIABLE result OUTPUT_VARIABLE hits ERROR_VARIABLE error)
if(result EQUAL 0)
  message(FATAL_ERROR "the core includes from src/cli or CLI11; move what it needs out of src/cli:\n${hits}")
elseif(NOT result EQUAL 1)
  message(FATAL_ERROR "git grep failed in ${SOURCE}: ${error}")
endif()
