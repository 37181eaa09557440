#include <doctest/doctest.h>

#include <idemq/errors.hpp>

#include <amqp.h>
#include <amqp_framing.h>
#include <nlohmann/json.hpp>

#include <array>
#include <string>
#include <vector>

#include "amqp/dead_letter.hpp"
#include "amqp/events.hpp"
#include "amqp/properties.hpp"
#include "amqp/value.hpp"
#include "common/base64.hpp"

using namespace idemq::detail;
using idemq::Headers;

namespace {

// Views only: every argument must outlive the value (literals, or strings of the test).
amqp_field_value_t bytes_value(std::uint8_t kind, std::string_view bytes) {
    amqp_field_value_t value{};
    value.kind = kind;
    value.value.bytes = as_amqp_bytes(bytes);
    return value;
}

amqp_table_entry_t entry(std::string_view key, amqp_field_value_t value) {
    amqp_table_entry_t out{};
    out.key = as_amqp_bytes(key);
    out.value = value;
    return out;
}

amqp_field_value_t table_value(std::vector<amqp_table_entry_t>& entries) {
    amqp_field_value_t value{};
    value.kind = AMQP_FIELD_KIND_TABLE;
    value.value.table.num_entries = static_cast<int>(entries.size());
    value.value.table.entries = entries.data();
    return value;
}

amqp_field_value_t array_value(std::vector<amqp_field_value_t>& items) {
    amqp_field_value_t value{};
    value.kind = AMQP_FIELD_KIND_ARRAY;
    value.value.array.num_entries = static_cast<int>(items.size());
    value.value.array.entries = items.data();
    return value;
}

amqp_basic_properties_t with_headers(std::vector<amqp_table_entry_t>& entries) {
    amqp_basic_properties_t props{};
    props._flags = AMQP_BASIC_HEADERS_FLAG;
    props.headers.num_entries = static_cast<int>(entries.size());
    props.headers.entries = entries.data();
    return props;
}

// What rabbitmq-c itself writes for these properties, through its public encoder.
std::size_t rabbitmq_c_size(const OwnedProperties& props) {
    std::vector<char> buffer(1 << 20);
    amqp_bytes_t out{buffer.size(), buffer.data()};
    auto copy = props.get();
    const int written = amqp_encode_properties(AMQP_BASIC_CLASS, &copy, out);
    REQUIRE(written >= 0);
    return static_cast<std::size_t>(written) + 12;  // class id, weight, body size
}

const std::string kBinary("\xff\xfe\x00\x80 not utf-8", 14);

}  // namespace

TEST_CASE("non-UTF-8 bytes at any depth render without throwing") {
    std::vector<amqp_field_value_t> items{bytes_value(AMQP_FIELD_KIND_UTF8, kBinary),
                                          bytes_value(AMQP_FIELD_KIND_BYTES, kBinary)};
    std::vector<amqp_table_entry_t> inner{entry("deep", array_value(items)),
                                          entry(kBinary, bytes_value(AMQP_FIELD_KIND_UTF8, "x"))};
    std::vector<amqp_table_entry_t> top{entry("nested", table_value(inner)),
                                        entry("flat", bytes_value(AMQP_FIELD_KIND_UTF8, kBinary))};
    const OwnedProperties props(with_headers(top));

    Headers text;
    REQUIRE_NOTHROW(text = props.headers_as_text());
    CHECK(text.at("flat") == kBinary);  // a top-level string stays byte for byte
    const auto nested = nlohmann::json::parse(text.at("nested"));
    CHECK(nested["deep"][0].contains("$string_base64"));
    CHECK(nested["deep"][1].contains("$bytes_base64"));
    CHECK(nested.contains("$base64:" + base64_encode(kBinary)));
    REQUIRE_NOTHROW((void)props.to_json().dump());
}

TEST_CASE("every AMQP field kind renders as text and survives the JSON round trip exactly") {
    std::vector<amqp_table_entry_t> top;
    const auto add = [&](const char* key, std::uint8_t kind, auto setter) {
        amqp_field_value_t value{};
        value.kind = kind;
        setter(value);
        top.push_back(entry(key, value));
    };
    std::vector<std::string> keys;
    add("bool", AMQP_FIELD_KIND_BOOLEAN, [](auto& v) { v.value.boolean = 1; });
    add("i8", AMQP_FIELD_KIND_I8, [](auto& v) { v.value.i8 = -8; });
    add("u8", AMQP_FIELD_KIND_U8, [](auto& v) { v.value.u8 = 200; });
    add("i16", AMQP_FIELD_KIND_I16, [](auto& v) { v.value.i16 = -16; });
    add("u16", AMQP_FIELD_KIND_U16, [](auto& v) { v.value.u16 = 60000; });
    add("i32", AMQP_FIELD_KIND_I32, [](auto& v) { v.value.i32 = -32; });
    add("u32", AMQP_FIELD_KIND_U32, [](auto& v) { v.value.u32 = 4000000000U; });
    add("i64", AMQP_FIELD_KIND_I64, [](auto& v) { v.value.i64 = INT64_MIN; });
    add("u64", AMQP_FIELD_KIND_U64, [](auto& v) { v.value.u64 = UINT64_MAX; });
    add("f32", AMQP_FIELD_KIND_F32, [](auto& v) { v.value.f32 = 1.5F; });
    add("f64", AMQP_FIELD_KIND_F64, [](auto& v) { v.value.f64 = 2.25; });
    add("decimal", AMQP_FIELD_KIND_DECIMAL, [](auto& v) { v.value.decimal = {.decimals = 4, .value = 12345}; });
    add("timestamp", AMQP_FIELD_KIND_TIMESTAMP, [](auto& v) { v.value.u64 = 1700000000; });
    add("void", AMQP_FIELD_KIND_VOID, [](auto&) {});
    top.push_back(entry("bytes", bytes_value(AMQP_FIELD_KIND_BYTES, kBinary)));
    top.push_back(entry("$dollar", bytes_value(AMQP_FIELD_KIND_UTF8, "d")));
    const OwnedProperties props(with_headers(top));

    const Headers text = props.headers_as_text();
    CHECK(text.at("bool") == "true");
    CHECK(text.at("u64") == "18446744073709551615");
    CHECK(text.at("decimal") == "1.2345");
    CHECK(text.at("timestamp") == "1700000000");
    CHECK(text.at("void") == "null");
    CHECK(text.at("bytes") == kBinary);

    const auto json = props.to_json();
    CHECK(json["headers"]["decimal"] == nlohmann::json{{"$decimal", "1.2345"}});
    CHECK(json["headers"]["timestamp"] == nlohmann::json{{"$timestamp", 1700000000}});
    // The file format is text: dump, parse, decode.
    const auto back = OwnedProperties::from_json(nlohmann::json::parse(json.dump()));
    CHECK(back.to_json() == json);
    CHECK(back.headers_as_text().at("bytes") == kBinary);
    CHECK(back.headers_as_text().at("$dollar") == "d");
}

TEST_CASE("decimals render exactly, whatever their scale") {
    CHECK(decimal_text(5, 0) == "5");
    CHECK(decimal_text(5, 3) == "0.005");
    CHECK(decimal_text(12345, 2) == "123.45");
    CHECK(decimal_text(0, 1) == "0.0");
    CHECK(decimal_text(UINT32_MAX, 255).size() == 257);
}

TEST_CASE("non-UTF-8 message ids and correlation ids are exported byte-exact, and old exports still import") {
    amqp_basic_properties_t source{};
    source._flags = AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG;
    source.message_id = as_amqp_bytes(kBinary);
    const std::string nul("a\0b", 3);
    source.correlation_id = as_amqp_bytes(nul);
    const OwnedProperties props(source);
    const auto json = props.to_json();
    CHECK(json["message_id"].contains("$string_base64"));
    const auto back = OwnedProperties::from_json(nlohmann::json::parse(json.dump()));
    CHECK(back.message_id() == kBinary);
    CHECK(back.correlation_id() == nul);

    // The untyped format written before: plain strings and numbers.
    const auto old = OwnedProperties::from_json(nlohmann::json::parse(
        R"({"message_id":"m-1","delivery_mode":2,"headers":{"tenant":"acme","n":5,"nested":{"list":[1,"two"]}}})"));
    CHECK(old.message_id() == "m-1");
    CHECK(old.int_header("n") == 5);
    CHECK(old.headers_as_text().at("nested") == R"({"list":[1,"two"]})");
}

TEST_CASE("a malformed export record is refused with an error, never a crash") {
    for (const char* text :
         {R"({"headers":{"a":{"$bytes_base64":"!!!"}}})", R"({"headers":{"a":{"$decimal":"1.x"}}})",
          R"({"headers":{"a":{"$decimal":"99999999999"}}})", R"({"headers":{"a":{"$timestamp":-1}}})",
          R"({"message_id":{"$string_base64":"@@@@"}})", R"([1,2])"}) {
        CAPTURE(text);
        CHECK_THROWS_AS((void)OwnedProperties::from_json(nlohmann::json::parse(text)), idemq::Error);
    }
}

TEST_CASE("values nested past the depth limit render as a marker, not a stack overflow") {
    std::vector<std::vector<amqp_field_value_t>> levels(200);
    amqp_field_value_t value = bytes_value(AMQP_FIELD_KIND_UTF8, "leaf");
    for (auto& level : levels) {
        level.push_back(value);
        value = array_value(level);
    }
    std::vector<amqp_table_entry_t> top{entry("deep", value)};
    const OwnedProperties props(with_headers(top));
    CHECK(props.headers_as_text().at("deep").find("$too_deep") != std::string::npos);
    CHECK_FALSE(encoded_size(value).has_value());
    // An export of it imports again (the marker becomes void).
    CHECK_NOTHROW((void)OwnedProperties::from_json(nlohmann::json::parse(props.to_json().dump())));
    // A copy leaves such a header off rather than hand rabbitmq-c a recursion it may not survive.
    const OwnedProperties copy = props.for_republish({});
    CHECK(copy.headers_as_text().count("deep") == 0);
    CHECK(copy.headers_as_text().at(std::string(header::kDroppedHeaders)) == "deep");
}

TEST_CASE("the encoded size of properties is exactly what rabbitmq-c writes") {
    std::vector<amqp_field_value_t> items{bytes_value(AMQP_FIELD_KIND_BYTES, kBinary),
                                          bytes_value(AMQP_FIELD_KIND_UTF8, "s")};
    std::vector<amqp_table_entry_t> inner{entry("i", bytes_value(AMQP_FIELD_KIND_UTF8, "v"))};
    amqp_field_value_t decimal{};
    decimal.kind = AMQP_FIELD_KIND_DECIMAL;
    amqp_field_value_t ts{};
    ts.kind = AMQP_FIELD_KIND_TIMESTAMP;
    std::vector<amqp_table_entry_t> top{entry("a", array_value(items)), entry("t", table_value(inner)),
                                        entry("d", decimal), entry("ts", ts)};
    amqp_basic_properties_t source = with_headers(top);
    source._flags |= AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_PRIORITY_FLAG;
    source.message_id = amqp_cstring_bytes("m-1");
    const OwnedProperties props(source);
    REQUIRE(props.encoded_size().has_value());
    CHECK(*props.encoded_size() == rabbitmq_c_size(props));
}

TEST_CASE("a republished copy of headers near frame_max fits, dropping the largest originals and naming them") {
    const std::string big(90'000, 'b');
    const std::string medium(40'000, 'm');
    const std::string small(100, 's');
    std::vector<amqp_table_entry_t> top{entry("big", bytes_value(AMQP_FIELD_KIND_UTF8, big)),
                                        entry("medium", bytes_value(AMQP_FIELD_KIND_UTF8, medium)),
                                        entry("small", bytes_value(AMQP_FIELD_KIND_UTF8, small))};
    const OwnedProperties props(with_headers(top));
    const Failure failure{.reason = "permanent-error", .error = std::string(5000, 'e'), .error_type = "E"};
    const auto copy = props.for_republish(dead_letter_headers(failure, {.handler = "h",
                                                                        .original_exchange = "x",
                                                                        .original_routing_key = "k",
                                                                        .attempt = 1,
                                                                        .first_failure_at = "",
                                                                        .last_failure_at = ""}),
                                          republish_budget(131072));
    REQUIRE(copy.encoded_size().has_value());
    CHECK(*copy.encoded_size() <= republish_budget(131072));
    const auto text = copy.headers_as_text();
    CHECK(text.count("big") == 0);
    CHECK(text.at("medium") == medium);
    CHECK(text.at("small") == small);
    CHECK(text.at(std::string(header::kDroppedHeaders)) == "big");
    CHECK(text.at("x-idemq-reason") == "permanent-error");

    // A small frame: everything of the original's that does not fit goes, idemq's headers stay.
    const auto tight = props.for_republish(dead_letter_headers(failure, {.handler = "h",
                                                                         .original_exchange = "x",
                                                                         .original_routing_key = "k",
                                                                         .attempt = 1,
                                                                         .first_failure_at = "",
                                                                         .last_failure_at = ""}),
                                           republish_budget(16384));
    CHECK(*tight.encoded_size() <= republish_budget(16384));
    CHECK(tight.headers_as_text().at(std::string(header::kDroppedHeaders)) == "big,medium");
    CHECK(tight.headers_as_text().at("small") == small);
}

TEST_CASE("a republished copy carries no routing headers: one copy, one queue") {
    std::vector<amqp_field_value_t> keys{bytes_value(AMQP_FIELD_KIND_UTF8, "other-queue"),
                                         bytes_value(AMQP_FIELD_KIND_UTF8, "third-queue")};
    std::vector<amqp_table_entry_t> top{entry("CC", array_value(keys)), entry("BCC", array_value(keys)),
                                        entry("tenant", bytes_value(AMQP_FIELD_KIND_UTF8, "acme"))};
    const OwnedProperties props(with_headers(top));
    for (const auto& copy : {props.for_republish({}), props.for_republish({{"x-idemq-reason", std::string("r")}})}) {
        const auto text = copy.headers_as_text();
        CHECK(text.count("CC") == 0);
        CHECK(text.count("BCC") == 0);
        CHECK(text.at("tenant") == "acme");
        CHECK(text.at(std::string(header::kOriginalCc)) == R"(["other-queue","third-queue"])");
    }
}

TEST_CASE("spoofed idemq headers of the original are replaced on the copy, never duplicated") {
    std::vector<amqp_table_entry_t> top{entry("x-idemq-reason", bytes_value(AMQP_FIELD_KIND_UTF8, "spoofed")),
                                        entry(header::kDroppedHeaders, bytes_value(AMQP_FIELD_KIND_UTF8, "earlier"))};
    const OwnedProperties props(with_headers(top));
    const auto copy = props.for_republish({{"x-idemq-reason", std::string("real")}});
    int reasons = 0;
    for (int i = 0; i < copy.get().headers.num_entries; ++i) {
        if (to_string(copy.get().headers.entries[i].key) == "x-idemq-reason") ++reasons;
    }
    CHECK(reasons == 1);
    CHECK(copy.headers_as_text().at("x-idemq-reason") == "real");
    CHECK(copy.headers_as_text().at(std::string(header::kDroppedHeaders)) == "earlier");
}

TEST_CASE("a content header announcing an absurd body size allocates nothing up front") {
    ContentAssembler assembler;
    amqp_basic_deliver_t deliver{};
    deliver.delivery_tag = 1;
    amqp_frame_t method{};
    method.frame_type = AMQP_FRAME_METHOD;
    method.channel = 1;
    method.payload.method.id = AMQP_BASIC_DELIVER_METHOD;
    method.payload.method.decoded = &deliver;
    CHECK_FALSE(assembler.feed(method).has_value());
    amqp_basic_properties_t props{};
    amqp_frame_t header{};
    header.frame_type = AMQP_FRAME_HEADER;
    header.channel = 1;
    header.payload.properties.class_id = AMQP_BASIC_CLASS;
    header.payload.properties.body_size = std::uint64_t{1} << 62;
    header.payload.properties.decoded = &props;
    CHECK_NOTHROW((void)assembler.feed(header));
    std::string fragment(1000, 'x');
    amqp_frame_t body{};
    body.frame_type = AMQP_FRAME_BODY;
    body.channel = 1;
    body.payload.body_fragment = as_amqp_bytes(fragment);
    CHECK_FALSE(assembler.feed(body).has_value());
}

TEST_CASE("empty arrays, tables and strings anywhere in the headers are copied like any other value") {
    std::vector<amqp_field_value_t> none;
    std::vector<amqp_table_entry_t> empty_table;
    std::vector<amqp_field_value_t> holder{array_value(none), table_value(empty_table),
                                           bytes_value(AMQP_FIELD_KIND_BYTES, "")};
    std::vector<amqp_table_entry_t> top{entry("a", array_value(none)), entry("t", table_value(empty_table)),
                                        entry("s", bytes_value(AMQP_FIELD_KIND_UTF8, "")),
                                        entry("n", array_value(holder))};
    const OwnedProperties props(with_headers(top));
    const OwnedProperties again(props.get());
    const auto text = again.headers_as_text();
    CHECK(text.at("a") == "[]");
    CHECK(text.at("t") == "{}");
    CHECK(text.at("s").empty());
    CHECK(text.at("n") == R"([[],{},{"$bytes_base64":""}])");
}
