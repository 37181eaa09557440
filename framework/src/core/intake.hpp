#pragma once

#include <idemq/handler.hpp>
#include <idemq/message.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "amqp/events.hpp"
#include "common/failure.hpp"

namespace idemq::detail {

// What is decided about a delivery as it arrives, before any handler runs.
struct Admission {
    // The message the handler will see; its body moved out of the delivery.
    std::shared_ptr<const Message> message;
    // Dead-letter it at once: it cannot be read as a message, or is too large.
    std::optional<Failure> refusal;
    // A delayed retry that came back early: send it round its tiers again for this long.
    std::optional<std::chrono::milliseconds> delay_again;
};

// Turns a delivery of `route` into a Message and the verdicts intake makes
// itself. Nothing a publisher puts in a message makes it throw: nothing may escape
// from the loop thread (it would look like a lost connection and bring the
// message straight back). `tiers` are the worker's delay tiers,
// `now_ms` the Unix time in ms. Leaves the delivery's properties in place.
[[nodiscard]] Admission admit_delivery(Delivery& delivery, const Route& route,
                                       const std::vector<std::chrono::milliseconds>& tiers, std::size_t max_body_bytes,
                                       std::int64_t now_ms);

}  // namespace idemq::detail
