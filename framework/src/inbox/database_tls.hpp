#pragma once

#include <string>

namespace idemq::detail {

// The sslmode libpq will use for `url` (a URL or key=value string): the
// URL's own, else PGSSLMODE's, else libpq's default ("prefer"). Throws
// ConfigError when the URL does not parse.
[[nodiscard]] std::string effective_sslmode(const std::string& url);

// Throws ConfigError, naming IDEMQ_DATABASE_URL and the sslmode, unless a
// connection to `url` must use TLS and verify the server's certificate and
// host name (sslmode=verify-full): IDEMQ_REQUIRE_TLS=1.
void require_verified_database_tls(const std::string& url);

}  // namespace idemq::detail
