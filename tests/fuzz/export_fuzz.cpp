// A line of a DLQ export file, as `dlq import` reads it: files are edited by
// hand and come from older versions, so any text must be refused cleanly or
// imported as something idemq can republish.
#include <idemq/errors.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/base64.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string line(reinterpret_cast<const char*>(data), size);
    const auto record = nlohmann::json::parse(line, nullptr, false);
    if (record.is_discarded() || !record.is_object()) return 0;
    try {
        const auto properties = record.find("properties");
        if (properties != record.end()) {
            const auto props = idemq::detail::OwnedProperties::from_json(*properties);
            fuzz::exercise(props, idemq::detail::kDefaultRepublishBudget);
        }
        const auto body = record.find("body_base64");
        if (body != record.end() && body->is_string()) {
            const std::string bytes = idemq::detail::base64_decode(body->get<std::string>());
            fuzz::check(idemq::detail::base64_decode(idemq::detail::base64_encode(bytes)) == bytes,
                        "base64 round trip");
        }
    } catch (const idemq::Error&) {
        // A clear refusal is the expected outcome for malformed records.
    }
    return 0;
}
