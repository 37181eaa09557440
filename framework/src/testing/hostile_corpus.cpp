#include "testing/hostile_corpus.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>

#include "amqp/idemq_headers.hpp"
#include "testing/table_builder.hpp"

namespace idemq::detail {
namespace {

// Not UTF-8 (a lone continuation byte, an overlong lead, a truncated
// sequence), with a NUL in the middle: what breaks text columns and C strings.
const std::string kBinary("\xff\xfe\x00\xc3\x28 binary", 12);

// The example's properties, with whatever a case changes or adds.
class Properties final {
public:
    explicit Properties(const Message::Fields& example) {
        props_._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_HEADERS_FLAG;
        props_.delivery_mode = AMQP_DELIVERY_PERSISTENT;
        if (!example.message_id.empty()) message_id(example.message_id);
        if (!example.correlation_id.empty()) correlation_id(example.correlation_id);
        if (!example.content_type.empty()) {
            props_._flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
            props_.content_type = t_.keep(example.content_type);
        }
        for (const auto& [name, value] : example.headers) headers_.emplace_back(name, t_.text(value));
    }

    TableBuilder& builder() { return t_; }
    Properties& message_id(std::string id) {
        props_._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
        props_.message_id = t_.keep(std::move(id));
        return *this;
    }
    Properties& no_message_id() {
        props_._flags &= ~AMQP_BASIC_MESSAGE_ID_FLAG;
        return *this;
    }
    Properties& correlation_id(std::string id) {
        props_._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
        props_.correlation_id = t_.keep(std::move(id));
        return *this;
    }
    Properties& header(std::string name, amqp_field_value_t value) {
        headers_.emplace_back(std::move(name), value);
        return *this;
    }
    // Access for the cases that set the rarer properties by hand.
    amqp_basic_properties_t& raw() { return props_; }

    [[nodiscard]] WireMessage with_body(std::string body) {
        props_.headers = t_.make_table(headers_);
        return {OwnedProperties(props_), std::move(body)};
    }

private:
    TableBuilder t_;
    amqp_basic_properties_t props_{};
    TableBuilder::Entries headers_;
};

amqp_field_value_t i64(std::int64_t n) {
    return TableBuilder::scalar(AMQP_FIELD_KIND_I64, [n](auto& v) { v.value.i64 = n; });
}

// Routing headers that name the work queue: on the original they add
// nothing (a queue gets one copy per publish), but on a copy idemq publishes
// through the default exchange they would deliver it to the work queue too.
void add_routing_headers(Properties& p, const std::string& queue) {
    auto& t = p.builder();
    p.header("CC", t.array({t.text(queue)}));
    p.header("BCC", t.array({t.text(queue)}));
}

std::vector<HostileCase> build_cases() {
    using In = const CaseInput&;
    std::vector<HostileCase> cases;
    const auto add = [&](std::string name, std::string what, std::function<WireMessage(In)> build) {
        cases.push_back({std::move(name), std::move(what), std::move(build)});
    };

    add("baseline", "the example message itself", [](In in) { return plain_message(in.example); });

    add("message-id-nul", "a message id with a NUL byte inside", [](In in) {
        return Properties(in.example)
            .message_id(in.example.message_id + std::string("\0nul", 4))
            .with_body(in.example.body);
    });
    add("message-id-invalid-utf8", "a message id that is not UTF-8", [](In in) {
        return Properties(in.example).message_id(in.example.message_id + "\xff\xfe\xc3\x28").with_body(in.example.body);
    });
    add("message-id-absent", "no message id at all",
        [](In in) { return Properties(in.example).no_message_id().with_body(in.example.body); });
    add("message-id-max-length", "a message id of 255 bytes, the most AMQP allows", [](In in) {
        std::string id = in.example.message_id.substr(0, 255);
        id.resize(255, '#');
        return Properties(in.example).message_id(std::move(id)).with_body(in.example.body);
    });
    add("correlation-id-binary", "a correlation id of binary bytes", [](In in) {
        return Properties(in.example).correlation_id(kBinary + in.example.message_id).with_body(in.example.body);
    });

    add("header-invalid-utf8", "non-UTF-8 bytes in a string header and in a byte-array header", [](In in) {
        Properties p(in.example);
        auto& t = p.builder();
        p.header("hostile-text", t.text(kBinary)).header("hostile-bytes", t.bytes(kBinary));
        return p.with_body(in.example.body);
    });
    add("header-nested-binary", "non-UTF-8 bytes in header names and values inside nested tables and arrays",
        [](In in) {
            Properties p(in.example);
            auto& t = p.builder();
            p.header(kBinary, t.text("binary name"))
                .header(
                    "hostile-nested",
                    t.table({{kBinary, t.array({t.table({{"k", t.text(kBinary)}}), t.bytes(kBinary), t.text("ok")})}}));
            return p.with_body(in.example.body);
        });
    add("header-every-field-type", "one header of every AMQP field type, nested arrays and empty tables included",
        [](In in) {
            Properties p(in.example);
            auto& t = p.builder();
            using B = TableBuilder;
            p.header("hostile-bool", B::scalar(AMQP_FIELD_KIND_BOOLEAN, [](auto& v) { v.value.boolean = 1; }))
                .header("hostile-i8", B::scalar(AMQP_FIELD_KIND_I8, [](auto& v) { v.value.i8 = -8; }))
                .header("hostile-u8", B::scalar(AMQP_FIELD_KIND_U8, [](auto& v) { v.value.u8 = 250; }))
                .header("hostile-i16", B::scalar(AMQP_FIELD_KIND_I16, [](auto& v) { v.value.i16 = -1600; }))
                .header("hostile-i32", B::scalar(AMQP_FIELD_KIND_I32, [](auto& v) { v.value.i32 = -320000; }))
                .header("hostile-i64", i64(std::numeric_limits<std::int64_t>::min()))
                .header("hostile-f32", B::scalar(AMQP_FIELD_KIND_F32, [](auto& v) { v.value.f32 = 1.5F; }))
                // Not NaN or infinity: RabbitMQ itself cannot decode those and closes the publisher's connection.
                .header("hostile-f64", B::scalar(AMQP_FIELD_KIND_F64,
                                                 [](auto& v) { v.value.f64 = std::numeric_limits<double>::max(); }))
                .header("hostile-decimal",
                        B::scalar(AMQP_FIELD_KIND_DECIMAL,
                                  [](auto& v) { v.value.decimal = {.decimals = 2, .value = 12345}; }))
                .header("hostile-timestamp",
                        B::scalar(AMQP_FIELD_KIND_TIMESTAMP,
                                  [](auto& v) { v.value.u64 = std::numeric_limits<std::uint64_t>::max(); }))
                .header("hostile-void", B::scalar(AMQP_FIELD_KIND_VOID, [](auto&) {}))
                .header("hostile-nested",
                        t.array({t.array({t.array({t.bytes(kBinary), t.table({{"d", t.table({})}})})}), t.array({})}));
            return p.with_body(in.example.body);
        });
    // As deep as idemq re-encodes (a deeper table is refused at publish by
    // idemq's own publisher, so the suite could not send it).
    add("header-deep-nesting", "tables and arrays nested 60 deep", [](In in) {
        Properties p(in.example);
        auto& t = p.builder();
        amqp_field_value_t value = t.text("bottom");
        for (int depth = 0; depth < 60; ++depth) value = depth % 2 == 0 ? t.array({value}) : t.table({{"d", value}});
        p.header("hostile-deep", value);
        return p.with_body(in.example.body);
    });
    add("headers-near-frame-max", "headers that fill the connection's frame_max but for a few hundred bytes",
        [](In in) {
            // Measure the message without padding, then pad it to just under
            // the frame: any header added to an unbounded copy would not fit.
            const auto unpadded = Properties(in.example).with_body({});
            const std::size_t used = unpadded.properties.encoded_size().value_or(0);
            constexpr std::size_t kFrameOverhead = 8;
            constexpr std::size_t kSlack = 512;
            constexpr std::size_t kEntryOverhead = 2 * (1 + 17 + 1 + 4);  // two entries: key length, key, kind, length
            const std::size_t room = in.frame_max > used + kFrameOverhead + kSlack + kEntryOverhead
                                         ? in.frame_max - used - kFrameOverhead - kSlack - kEntryOverhead
                                         : 0;
            Properties p(in.example);
            auto& t = p.builder();
            p.header("hostile-pad-large", t.text(std::string(room * 3 / 5, 'L')))
                .header("hostile-pad-small", t.text(std::string(room - room * 3 / 5, 'S')));
            return p.with_body(in.example.body);
        });
    add("headers-spoofed-idemq",
        "x-idemq-* and x-death headers a publisher made up: attempt, not-before, origin, reason", [](In in) {
            Properties p(in.example);
            auto& t = p.builder();
            const std::int64_t ten_days_ahead_ms =
                std::chrono::duration_cast<std::chrono::milliseconds>(
                    (std::chrono::system_clock::now() + std::chrono::hours(240)).time_since_epoch())
                    .count();
            p.header(std::string(header::kAttempt), i64(std::numeric_limits<std::int64_t>::max()))
                .header(std::string(header::kNotBefore), i64(ten_days_ahead_ms))
                .header(std::string(header::kOriginalExchange), t.text("spoofed"))
                .header(std::string(header::kOriginalRoutingKey), t.text("spoofed"))
                .header(std::string(header::kReason), t.text("spoofed"))
                .header(std::string(header::kReplayCount), t.text("many"))
                .header("x-death", t.text("spoofed"));
            return p.with_body(in.example.body);
        });
    add("properties-unusual",
        "every other property set to something odd: content type and encoding, type, app id, "
        "reply-to, priority 255, the largest timestamp",
        [](In in) {
            Properties p(in.example);
            auto& t = p.builder();
            auto& raw = p.raw();
            raw._flags |= AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG | AMQP_BASIC_TYPE_FLAG |
                          AMQP_BASIC_APP_ID_FLAG | AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_PRIORITY_FLAG |
                          AMQP_BASIC_TIMESTAMP_FLAG;
            raw.content_type = t.keep("application/x-hostile; charset=\xff");
            raw.content_encoding = t.keep("gzip");  // the body is not gzip
            raw.type = t.keep(kBinary);
            raw.app_id = t.keep(kBinary);
            raw.reply_to = t.keep(kBinary);
            raw.priority = 255;
            raw.timestamp = std::numeric_limits<std::uint64_t>::max();
            return p.with_body(in.example.body);
        });

    add("body-empty", "an empty body", [](In in) { return Properties(in.example).with_body({}); });
    add("body-binary", "a body of every byte value, NUL first", [](In in) {
        std::string body;
        for (int round = 0; round < 4; ++round) {
            for (int byte = 0; byte < 256; ++byte) body.push_back(static_cast<char>(byte));
        }
        return Properties(in.example).with_body(std::move(body));
    });
    add("body-truncated", "the first half of the example's body",
        [](In in) { return Properties(in.example).with_body(in.example.body.substr(0, in.example.body.size() / 2)); });
    add("body-nul-inside", "the example's body with a NUL byte in the middle (C strings end there)", [](In in) {
        std::string body = in.example.body;
        body.insert(body.size() / 2, 1, '\0');
        return Properties(in.example).with_body(std::move(body));
    });
    add("body-invalid-utf8", "the example's body followed by bytes that are not UTF-8",
        [](In in) { return Properties(in.example).with_body(in.example.body + "\xff\xfe\xc3\x28"); });
    add("body-deeply-nested-json", "100,000 opening brackets: a recursive parser runs out of stack",
        [](In in) { return Properties(in.example).with_body(std::string(100'000, '[')); });
    add("body-oversized", "a body one byte over IDEMQ_MAX_BODY_BYTES",
        [](In in) { return Properties(in.example).with_body(std::string(in.max_body_bytes + 1, 'x')); });

    add("routing-headers-on-bad-input", "CC and BCC headers naming the work queue, on a truncated body", [](In in) {
        Properties p(in.example);
        add_routing_headers(p, in.queue);
        return p.with_body(in.example.body.substr(0, in.example.body.size() / 2));
    });
    add("routing-headers-on-example", "CC and BCC headers naming the work queue, on the example's body", [](In in) {
        Properties p(in.example);
        add_routing_headers(p, in.queue);
        return p.with_body(in.example.body);
    });
    return cases;
}

}  // namespace

const std::vector<HostileCase>& hostile_cases() {
    static const std::vector<HostileCase> cases = build_cases();
    return cases;
}

WireMessage plain_message(const Message::Fields& example) { return Properties(example).with_body(example.body); }

}  // namespace idemq::detail
