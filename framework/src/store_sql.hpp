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
inline constexpr const char* kMarkStartedStatement = "idemq_mark_started";
inline constexpr const char* kClearStartedStatement = "idemq_clear_started";

// Prepares the inbox statements on `connection` for the inbox in `schema`.
//   idemq_claim(handler, key, sha256 hex, message id, correlation id)
//       -> one row when the key is new to the handler, none when seen before.
//   idemq_fingerprint(handler, key) -> the stored body fingerprint (hex).
//   idemq_mark_started(handler, key) -> deliveries counted so far, this one included.
//   idemq_clear_started(handler, key) -> forgets the count.
void prepare_inbox_statements(pqxx::connection_base& connection, std::string_view schema);

// The inbox table's qualified, quoted name.
[[nodiscard]] std::string inbox_table(std::string_view schema);

}  // namespace idemq::detail
