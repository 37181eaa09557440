#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "amqp/connection.hpp"

namespace idemq::detail {

// Reads a queue from start to end without removing anything: every message
// is held unacked until ack() or until the reader goes away, when the broker
// puts it back. Memory stays flat however long the queue is.
class QueueReader final {
public:
    // Throws ConfigError when the queue does not exist.
    QueueReader(const std::string& url, const BrokerSecurity& security, const std::string& queue);
    ~QueueReader();
    QueueReader(const QueueReader&) = delete;
    QueueReader& operator=(const QueueReader&) = delete;

    // Messages in the queue when reading started.
    [[nodiscard]] std::uint32_t total() const { return total_; }

    // The next of those messages, or nullopt at the end (or when none came
    // for a while: another consumer took them).
    std::optional<Delivery> next();
    void ack(std::uint64_t tag) { connection_.ack(tag); }

private:
    AmqpConnection connection_;
    std::uint32_t total_ = 0;
    std::uint32_t seen_ = 0;
    bool show_progress_ = false;
};

}  // namespace idemq::detail
