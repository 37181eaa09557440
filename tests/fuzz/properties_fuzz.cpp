// Properties and header tables as they come off the wire (the payload of a
// content header after class id, weight and body size), decoded by
// rabbitmq-c as the worker does, then everything idemq does with them.
#include <cstddef>
#include <cstdint>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    // The first byte picks a frame_max between the broker's minimum and idemq's.
    const int frame_max = 4096 + static_cast<int>(data[0]) * 497;
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    void* decoded = nullptr;
    const amqp_bytes_t encoded{size - 1, const_cast<std::uint8_t*>(data + 1)};
    if (amqp_decode_properties(AMQP_BASIC_CLASS, &pool, encoded, &decoded) == 0 && decoded != nullptr) {
        const idemq::detail::OwnedProperties props(*static_cast<const amqp_basic_properties_t*>(decoded));
        fuzz::exercise(props, idemq::detail::republish_budget(frame_max));
    }
    empty_amqp_pool(&pool);
    return 0;
}
