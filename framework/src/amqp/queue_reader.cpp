#include "amqp/queue_reader.hpp"

#include <idemq/errors.hpp>

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

namespace idemq::detail {

QueueReader::QueueReader(const std::string& url, const BrokerSecurity& security, const std::string& queue)
    : connection_({.url = url,
                   .security = security,
                   .connection_name = "idemq queue reader",
                   .heartbeat = std::chrono::seconds(0)}) {
    const auto counts = connection_.inspect_queue(queue);
    if (!counts) throw ConfigError(fmt::format("queue '{}' does not exist", queue));
    total_ = counts->messages;
    // No prefetch limit: messages left unacked must not stop the flow.
    connection_.set_prefetch(0);
    if (total_ > 0) connection_.consume(queue, "idemq-queue-reader");
    show_progress_ = isatty(STDERR_FILENO) != 0 && total_ >= 1000;
}

QueueReader::~QueueReader() {
    if (show_progress_ && seen_ > 0) fmt::print(stderr, "\n");
}

std::optional<Delivery> QueueReader::next() {
    while (seen_ < total_) {
        auto event = connection_.wait_event(std::chrono::milliseconds(3'000));
        if (!event) return std::nullopt;
        if (auto* delivery = std::get_if<Delivery>(&*event)) {
            ++seen_;
            if (show_progress_ && (seen_ % 1000 == 0 || seen_ == total_)) {
                fmt::print(stderr, "\rread {} of {}", seen_, total_);
                std::fflush(stderr);
            }
            return std::move(*delivery);
        }
    }
    return std::nullopt;
}

}  // namespace idemq::detail
