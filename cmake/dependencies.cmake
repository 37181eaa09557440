# Every dependency comes from a Debian package. libuv, rabbitmq-c and libpqxx
# ship only pkg-config files on Debian 12, so they become IMPORTED targets
# here; the installed package config (idemq-config.cmake.in) recreates the
# same targets with find_dependency.
find_package(PkgConfig REQUIRED)
pkg_check_modules(idemq_libuv REQUIRED IMPORTED_TARGET libuv>=1.44)
pkg_check_modules(idemq_rabbitmq REQUIRED IMPORTED_TARGET librabbitmq>=0.11)
pkg_check_modules(idemq_pqxx REQUIRED IMPORTED_TARGET libpqxx>=6.4)
# libpq itself, for PQconninfoParse: libpqxx.pc does not pass it on.
pkg_check_modules(idemq_libpq REQUIRED IMPORTED_TARGET libpq)
find_package(OpenSSL REQUIRED)
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)
find_package(CLI11 REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(Threads REQUIRED)
find_package(prometheus-cpp CONFIG REQUIRED COMPONENTS core)
# http-parser ships neither a CMake config nor a pkg-config file on Debian 12.
find_path(IDEMQ_HTTP_PARSER_INCLUDE http_parser.h REQUIRED)
find_library(IDEMQ_HTTP_PARSER_LIBRARY http_parser REQUIRED)
if(NOT TARGET idemq_http_parser)
add_library(idemq_http_parser UNKNOWN IMPORTED)
set_target_properties(idemq_http_parser PROPERTIES
  IMPORTED_LOCATION "${IDEMQ_HTTP_PARSER_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${IDEMQ_HTTP_PARSER_INCLUDE}")
endif()
