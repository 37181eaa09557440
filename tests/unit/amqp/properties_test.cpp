#include <doctest/doctest.h>

#include <array>
#include <memory>

#include "amqp/properties.hpp"

using namespace idemq::detail;

namespace {

amqp_table_entry_t text_entry(const char* key, const char* value) {
    amqp_table_entry_t entry{};
    entry.key = amqp_cstring_bytes(key);
    entry.value.kind = AMQP_FIELD_KIND_UTF8;
    entry.value.value.bytes = amqp_cstring_bytes(value);
    return entry;
}

amqp_table_entry_t int_entry(const char* key, std::int32_t value) {
    amqp_table_entry_t entry{};
    entry.key = amqp_cstring_bytes(key);
    entry.value.kind = AMQP_FIELD_KIND_I32;
    entry.value.value.i32 = value;
    return entry;
}

}  // namespace

TEST_CASE("properties are deep-copied, so they outlive the frame they came from") {
    auto message_id = std::make_unique<std::string>("m-1");
    auto tenant = std::make_unique<std::string>("acme");
    std::array<amqp_table_entry_t, 2> entries{text_entry("tenant", tenant->c_str()), int_entry("x-idemq-attempt", 3)};
    amqp_basic_properties_t source{};
    source._flags = AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    source.message_id = amqp_cstring_bytes(message_id->c_str());
    source.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    source.headers.num_entries = static_cast<int>(entries.size());
    source.headers.entries = entries.data();

    const OwnedProperties copy(source);
    *message_id = "XXX";
    *tenant = "XXXX";
    CHECK(copy.message_id() == "m-1");
    CHECK(copy.correlation_id().empty());
    CHECK(copy.headers_as_text().at("tenant") == "acme");
    CHECK(copy.int_header("x-idemq-attempt") == 3);
    CHECK_FALSE(copy.int_header("tenant").has_value());
    CHECK(copy.get().delivery_mode == AMQP_DELIVERY_PERSISTENT);
}

TEST_CASE("adding headers keeps every other header and property, and replaces same-named ones") {
    const OwnedProperties original = OwnedProperties::make(
        "m-2", "c-2", "application/json", {{"tenant", std::string("acme")}, {"keep", std::int64_t{5}}});
    const OwnedProperties changed =
        original.with_headers({{"tenant", std::string("globex")}, {"x-idemq-reason", std::string("permanent-error")}});
    const auto headers = changed.headers_as_text();
    CHECK(headers.size() == 3);
    CHECK(headers.at("tenant") == "globex");
    CHECK(headers.at("keep") == "5");
    CHECK(headers.at("x-idemq-reason") == "permanent-error");
    CHECK(changed.message_id() == "m-2");
    CHECK(changed.correlation_id() == "c-2");
    CHECK(changed.content_type() == "application/json");
    CHECK(original.headers_as_text().at("tenant") == "acme");
}

TEST_CASE("non-text headers are rendered as JSON text for handlers") {
    amqp_table_entry_t inner = int_entry("n", 1);
    amqp_table_entry_t nested{};
    nested.key = amqp_cstring_bytes("nested");
    nested.value.kind = AMQP_FIELD_KIND_TABLE;
    nested.value.value.table.num_entries = 1;
    nested.value.value.table.entries = &inner;
    amqp_table_entry_t flag{};
    flag.key = amqp_cstring_bytes("flag");
    flag.value.kind = AMQP_FIELD_KIND_BOOLEAN;
    flag.value.value.boolean = 1;
    std::array<amqp_table_entry_t, 2> entries{nested, flag};
    amqp_basic_properties_t source{};
    source._flags = AMQP_BASIC_HEADERS_FLAG;
    source.headers.num_entries = 2;
    source.headers.entries = entries.data();
    const auto headers = OwnedProperties(source).headers_as_text();
    CHECK(headers.at("nested") == R"({"n":1})");
    CHECK(headers.at("flag") == "true");
}
