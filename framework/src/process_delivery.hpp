#pragma once

#include <idemq/handler.hpp>

#include <pqxx/connection>

#include <string>

#include "dead_letter.hpp"

namespace idemq::detail {

enum class OutcomeKind {
    kProcessed,   // handler ran, COMMIT succeeded: ack
    kDuplicate,   // key already in the inbox with the same body: ack
    kDeadLetter,  // cannot succeed: publish to the DLQ, then ack
    kRequeue,     // rolled back: return to the queue
    kRetryHere,   // the database failed, not the message: reconnect and run again
};

struct Outcome {
    OutcomeKind kind = OutcomeKind::kRequeue;
    Failure failure{};        // for kDeadLetter, kRequeue and kRetryHere
    bool in_doubt = false;    // kRetryHere after a COMMIT with unknown outcome
};

// The life of one delivery in the database: BEGIN; claim the idempotency key
// in the inbox; run the handler in the same transaction when the key is new;
// COMMIT. Runs on a handler thread. Never throws: every failure is an Outcome.
[[nodiscard]] Outcome process_delivery(pqxx::connection& connection, Handler& handler, std::string_view handler_name,
                                       const Message& message);

// Longest idempotency key accepted: Postgres cannot index much longer keys,
// and a key that long is a bug in the key function.
inline constexpr std::size_t kMaxKeyBytes = 512;

}  // namespace idemq::detail
