#pragma once

// Checks shared by the fuzz targets: whatever properties came in, every way
// idemq reads, renders, exports and republishes them must hold up.

#include <amqp.h>
#include <amqp_framing.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "amqp/dead_letter.hpp"
#include "amqp/dead_letter_view.hpp"
#include "amqp/properties.hpp"

namespace fuzz {

[[noreturn]] inline void fail(const char* what) {
    std::fprintf(stderr, "fuzz check failed: %s\n", what);
    std::abort();
}

inline void check(bool condition, const char* what) {
    if (!condition) fail(what);
}

// Everything a delivery's properties go through, from intake to the DLQ tools.
inline void exercise(const idemq::detail::OwnedProperties& props, std::size_t budget) {
    using namespace idemq::detail;
    (void)props.headers_as_text();
    (void)props.message_id();
    (void)props.correlation_id();
    (void)props.int_header(header::kAttempt);
    (void)props.int_header(header::kNotBefore);

    Delivery delivery;
    delivery.properties = OwnedProperties(props.get());
    (void)view_of(delivery);

    // The export round trip is exact: a second generation writes the same text.
    const nlohmann::json first = props.to_json();
    const std::string text = first.dump();
    const OwnedProperties back = OwnedProperties::from_json(nlohmann::json::parse(text));
    if (text.find("$too_deep") == std::string::npos) check(back.to_json().dump() == text, "export round trip");

    // A republished copy fits its budget and rabbitmq-c can encode it.
    const Failure failure{.reason = "permanent-error", .error = std::string(2000, 'e'), .error_type = "fuzz"};
    const OwnedProperties copy = props.for_republish(dead_letter_headers(failure, {.handler = "h",
                                                                                   .original_exchange = "x",
                                                                                   .original_routing_key = "k",
                                                                                   .attempt = 1,
                                                                                   .first_failure_at = "",
                                                                                   .last_failure_at = ""}),
                                                     budget);
    const auto size = copy.encoded_size();
    check(size.has_value(), "a republished copy is always encodable");
    check(*size <= budget, "a republished copy fits its budget");
    for (int i = 0; i < copy.get().headers.num_entries; ++i) {
        const std::string key = to_string(copy.get().headers.entries[i].key);
        check(key != "CC" && key != "BCC", "no routing headers on a copy");
    }
    std::vector<char> buffer(*size + 16);
    auto raw = copy.get();
    const int written = amqp_encode_properties(AMQP_BASIC_CLASS, &raw, amqp_bytes_t{buffer.size(), buffer.data()});
    check(written >= 0, "rabbitmq-c encodes the copy");
    if (static_cast<std::size_t>(written) + 12 != *size) {
        std::fprintf(stderr, "written %d + 12, encoded_size %zu, flags %x\n", written, *size, copy.get()._flags);
        fail("encoded_size is exact");
    }
}

}  // namespace fuzz
