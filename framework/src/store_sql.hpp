#pragma once

#include <pqxx/connection>

#include <string>
#include <string_view>

namespace idemq::detail {

// All SQL idemq runs on the hot path, in one place.

// `name` as a Postgres identifier, always quoted.
[[nodiscard]] std::string quote_identifier(std::string_view name);

// Names of the prepared statements.
inline constexpr const char* kClaimStatement = "idemq_claim";
inline constexpr const char* kFingerprintStatement = "idemq_fingerprint";

// Prepares the inbox statements on `connection` for the inbox in `schema`.
//   idemq_claim(handler, key, sha256 hex, message id, correlation id)
//       -> one row when the key is new to the handler, none when seen before.
//   idemq_fingerprint(handler, key) -> the stored body fingerprint (hex).
void prepare_inbox_statements(pqxx::connection_base& connection, std::string_view schema);

// The inbox table's qualified, quoted name.
[[nodiscard]] std::string inbox_table(std::string_view schema);

}  // namespace idemq::detail
