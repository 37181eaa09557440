# Warnings and sanitizers reach our own targets only, through this build-only
# interface target; nothing here is exported with the installed library.
add_library(idemq_build_flags INTERFACE)
target_compile_features(idemq_build_flags INTERFACE cxx_std_20)
target_compile_options(idemq_build_flags INTERFACE -Wall -Wextra -Wpedantic)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  # GCC 12 reports impossible overlaps in libstdc++'s string concatenation at
  # -O3 (GCC bug 105329), e.g. inside libpqxx's quote(): not our code's fault.
  target_compile_options(idemq_build_flags INTERFACE -Wno-restrict)
endif()
if(IDEMQ_WARNINGS_AS_ERRORS)
  target_compile_options(idemq_build_flags INTERFACE -Werror)
endif()
if(IDEMQ_SANITIZE)
  target_compile_options(idemq_build_flags INTERFACE -fsanitize=${IDEMQ_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(idemq_build_flags INTERFACE -fsanitize=${IDEMQ_SANITIZE})
endif()
