#pragma once

#include <pqxx/connection>

#include <string>
#include <string_view>
#include <vector>

namespace idemq::detail {

// All SQL idemq runs on the hot path, in one place.

// `name` as a Postgres identifier, always quoted.
[[nodiscard]] std::string quote_identifier(std::string_view name);

// `text` as a quoted SQL string literal, escaped for `connection`. (Built by
// appending: GCC 12 at -O3 misreports libpqxx's own quote() under -Wrestrict.)
[[nodiscard]] std::string quote_literal(pqxx::connection_base& connection, std::string_view text);

// A Postgres array literal of texts, e.g. {"a","b\"c"}, for `$n::text[]`.
[[nodiscard]] std::string text_array(const std::vector<std::string>& values);

// A Postgres array literal of whole numbers, e.g. {1,2,3}, for `$n::bigint[]`.
[[nodiscard]] std::string bigint_array(const std::vector<long long>& values);

// Names of the prepared statements.
inline constexpr const char* kClaimStatement = "idemq_claim";
inline constexpr const char* kFingerprintStatement = "idemq_fingerprint";
inline constexpr const char* kMarkStartedStatement = "idemq_mark_started";
inline constexpr const char* kClearStartedStatement = "idemq_clear_started";
inline constexpr const char* kClaimBatchStatement = "idemq_claim_batch";
inline constexpr const char* kFingerprintsStatement = "idemq_fingerprints";

// Prepares the inbox statements on `connection` for the inbox in `schema`.
// Keys, ids and delivery fingerprints are bytea, passed as
// pqxx::binarystring; arrays of them as text[] of hex digits.
//   idemq_claim(handler, key, sha256 hex, message id, correlation id)
//       -> one row when the key is new to the handler, none when seen before.
//   idemq_fingerprint(handler, key) -> the stored body fingerprint (hex).
//   idemq_mark_started(handler, delivery sha256, message id) -> deliveries counted so far, this one included.
//   idemq_clear_started(handler, delivery sha256) -> forgets the count.
//   idemq_claim_batch(handler, hex keys[], sha256 hex[], hex message ids[], hex correlation ids[])
//       -> the keys (hex) that were new to the handler.
//   idemq_fingerprints(handler, hex keys[]) -> (key hex, stored fingerprint hex) of those keys.
void prepare_inbox_statements(pqxx::connection_base& connection, std::string_view schema);

// The inbox table's qualified, quoted name.
[[nodiscard]] std::string inbox_table(std::string_view schema);

// The crash-loop guard's table, qualified and quoted.
[[nodiscard]] std::string handling_started_table(std::string_view schema);

}  // namespace idemq::detail
