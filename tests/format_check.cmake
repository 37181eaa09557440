# Fails when a tracked C++ file differs from what .clang-format makes of it.
# Fix with: clang-format -i $(git ls-files '*.cpp' '*.hpp')
find_program(CLANG_FORMAT NAMES clang-format-14 clang-format REQUIRED)
execute_process(COMMAND git -C "${SOURCE}" ls-files "*.cpp" "*.hpp" OUTPUT_VARIABLE files RESULT_VARIABLE result
                OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "git ls-files failed in ${SOURCE}")
endif()
string(REPLACE "\n" ";" files "${files}")
execute_process(COMMAND "${CLANG_FORMAT}" --dry-run --Werror ${files} WORKING_DIRECTORY "${SOURCE}"
                RESULT_VARIABLE result ERROR_VARIABLE complaints)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "files not formatted by .clang-format (run clang-format -i on them):\n${complaints}")
endif()
