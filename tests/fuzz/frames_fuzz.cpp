// Frames in any order and of any size into the ContentAssembler: protocol
// errors are BrokerErrors (the connection is dropped), never a crash, and an
// announced body size never allocates ahead of the bytes that arrived.
#include <idemq/errors.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "amqp/events.hpp"
#include "fuzz_common.hpp"

namespace {

std::uint64_t read_u64(const std::uint8_t*& at, const std::uint8_t* end) {
    std::uint64_t value = 0;
    for (int i = 0; i < 8 && at < end; ++i) value = (value << 8) | *at++;
    return value;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    idemq::detail::ContentAssembler assembler;
    const std::uint8_t* at = data;
    const std::uint8_t* end = data + size;
    amqp_basic_deliver_t deliver{};
    amqp_basic_return_t returned{};
    amqp_basic_ack_t ack{};
    amqp_connection_blocked_t blocked{};
    amqp_channel_close_t close{};
    amqp_basic_properties_t props{};
    std::string scratch;
    try {
        while (at < end) {
            const std::uint8_t op = *at++;
            amqp_frame_t frame{};
            frame.channel = 1;
            switch (op % 5) {
                case 0:
                    frame.frame_type = AMQP_FRAME_METHOD;
                    frame.payload.method.id = AMQP_BASIC_DELIVER_METHOD;
                    frame.payload.method.decoded = &deliver;
                    break;
                case 1: {
                    frame.frame_type = AMQP_FRAME_METHOD;
                    static constexpr amqp_method_number_t kOthers[] = {
                        AMQP_BASIC_RETURN_METHOD, AMQP_BASIC_ACK_METHOD, AMQP_CONNECTION_BLOCKED_METHOD,
                        AMQP_CHANNEL_CLOSE_METHOD, AMQP_CONNECTION_UNBLOCKED_METHOD};
                    const std::uint8_t which = at < end ? *at++ : 0;
                    frame.payload.method.id = kOthers[which % 5];
                    void* const decoded[] = {&returned, &ack, &blocked, &close, nullptr};
                    frame.payload.method.decoded = decoded[which % 5];
                    break;
                }
                case 2:
                    frame.frame_type = AMQP_FRAME_HEADER;
                    frame.payload.properties.class_id = AMQP_BASIC_CLASS;
                    // Small sizes mostly, so bodies complete; any size sometimes.
                    frame.payload.properties.body_size = (op & 0x80) != 0 ? read_u64(at, end) : (at < end ? *at++ : 0);
                    frame.payload.properties.decoded = &props;
                    break;
                case 3: {
                    frame.frame_type = AMQP_FRAME_BODY;
                    const std::size_t wanted = at < end ? *at++ : 0;
                    const std::size_t length = std::min<std::size_t>(wanted, static_cast<std::size_t>(end - at));
                    scratch.assign(reinterpret_cast<const char*>(at), length);
                    at += length;
                    frame.payload.body_fragment = idemq::detail::as_amqp_bytes(scratch);
                    break;
                }
                default: frame.frame_type = AMQP_FRAME_HEARTBEAT; break;
            }
            if (auto event = assembler.feed(frame)) {
                if (auto* delivery = std::get_if<idemq::detail::Delivery>(&*event)) {
                    fuzz::check(delivery->body.capacity() <= (1U << 20) + delivery->body.size() * 2,
                                "no allocation ahead of the body");
                }
            }
        }
    } catch (const idemq::BrokerError&) {
        // A protocol error: the worker drops the connection. Expected here.
    }
    return 0;
}
