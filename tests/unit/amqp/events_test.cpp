#include <doctest/doctest.h>

#include <idemq/errors.hpp>

#include <amqp.h>
#include <amqp_framing.h>

#include "amqp/events.hpp"

using namespace idemq::detail;

namespace {

amqp_frame_t method_frame(amqp_method_number_t id, void* decoded) {
    amqp_frame_t frame{};
    frame.frame_type = AMQP_FRAME_METHOD;
    frame.channel = 1;
    frame.payload.method.id = id;
    frame.payload.method.decoded = decoded;
    return frame;
}

amqp_frame_t header_frame(amqp_basic_properties_t* props, std::uint64_t body_size) {
    amqp_frame_t frame{};
    frame.frame_type = AMQP_FRAME_HEADER;
    frame.channel = 1;
    frame.payload.properties.class_id = AMQP_BASIC_CLASS;
    frame.payload.properties.body_size = body_size;
    frame.payload.properties.decoded = props;
    return frame;
}

amqp_frame_t body_frame(const char* text) {
    amqp_frame_t frame{};
    frame.frame_type = AMQP_FRAME_BODY;
    frame.channel = 1;
    frame.payload.body_fragment = amqp_cstring_bytes(text);
    return frame;
}

}  // namespace

TEST_CASE("a delivery split over several body frames is assembled whole") {
    ContentAssembler assembler;
    amqp_basic_deliver_t deliver{};
    deliver.consumer_tag = amqp_cstring_bytes("ctag");
    deliver.delivery_tag = 42;
    deliver.redelivered = 1;
    deliver.exchange = amqp_cstring_bytes("payments");
    deliver.routing_key = amqp_cstring_bytes("charge");
    amqp_basic_properties_t props{};
    props._flags = AMQP_BASIC_MESSAGE_ID_FLAG;
    props.message_id = amqp_cstring_bytes("m-42");

    CHECK_FALSE(assembler.feed(method_frame(AMQP_BASIC_DELIVER_METHOD, &deliver)).has_value());
    CHECK_FALSE(assembler.feed(header_frame(&props, 6)).has_value());
    CHECK_FALSE(assembler.feed(body_frame("abc")).has_value());
    auto event = assembler.feed(body_frame("def"));
    REQUIRE(event.has_value());
    auto& delivery = std::get<Delivery>(*event);
    CHECK(delivery.consumer_tag == "ctag");
    CHECK(delivery.delivery_tag == 42);
    CHECK(delivery.redelivered);
    CHECK(delivery.exchange == "payments");
    CHECK(delivery.routing_key == "charge");
    CHECK(delivery.properties.message_id() == "m-42");
    CHECK(delivery.body == "abcdef");
}

TEST_CASE("an empty body completes with the header frame") {
    ContentAssembler assembler;
    amqp_basic_deliver_t deliver{};
    deliver.delivery_tag = 1;
    amqp_basic_properties_t props{};
    (void)assembler.feed(method_frame(AMQP_BASIC_DELIVER_METHOD, &deliver));
    auto event = assembler.feed(header_frame(&props, 0));
    REQUIRE(event.has_value());
    CHECK(std::get<Delivery>(*event).body.empty());
}

TEST_CASE("publisher confirms and flow control become events") {
    ContentAssembler assembler;
    amqp_basic_ack_t ack{};
    ack.delivery_tag = 9;
    ack.multiple = 1;
    auto event = assembler.feed(method_frame(AMQP_BASIC_ACK_METHOD, &ack));
    REQUIRE(event.has_value());
    CHECK(std::get<Confirm>(*event).sequence == 9);
    CHECK(std::get<Confirm>(*event).multiple);
    CHECK(std::get<Confirm>(*event).ack);

    amqp_connection_blocked_t blocked{};
    blocked.reason = amqp_cstring_bytes("low on memory");
    event = assembler.feed(method_frame(AMQP_CONNECTION_BLOCKED_METHOD, &blocked));
    REQUIRE(event.has_value());
    CHECK(std::get<FlowBlocked>(*event).blocked);
}

TEST_CASE("the broker closing the channel is a channel-level broker error") {
    ContentAssembler assembler;
    amqp_channel_close_t close{};
    close.reply_code = 406;
    close.reply_text = amqp_cstring_bytes("PRECONDITION_FAILED - unknown delivery tag 1");
    try {
        (void)assembler.feed(method_frame(AMQP_CHANNEL_CLOSE_METHOD, &close));
        FAIL("expected a BrokerError");
    } catch (const idemq::BrokerError& e) {
        CHECK_FALSE(e.connection_level());
        CHECK(std::string(e.what()).find("unknown delivery tag") != std::string::npos);
    }
}
