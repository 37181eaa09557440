# Every dependency comes from a Debian package. libuv, rabbitmq-c and libpqxx
# ship only pkg-config files on Debian 12, so they become IMPORTED targets here;
# the installed package config recreates them the same way.
find_package(PkgConfig REQUIRED)
pkg_check_modules(idemq_libuv REQUIRED IMPORTED_TARGET libuv>=1.44)
pkg_check_modules(idemq_rabbitmq REQUIRED IMPORTED_TARGET librabbitmq>=0.11)
pkg_check_modules(idemq_pqxx REQUIRED IMPORTED_TARGET libpqxx>=6.4)
find_package(OpenSSL REQUIRED)
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)
find_package(CLI11 REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(Threads REQUIRED)
