#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace idemq {

/// AMQP headers as text. Strings are kept byte for byte; numbers are rendered
/// in decimal, booleans as `true`/`false`, other values as JSON. The typed
/// originals travel unchanged whenever idemq republishes a message.
using Headers = std::map<std::string, std::string, std::less<>>;

/// One delivery, as an owning immutable value. It is safe to copy and to keep
/// after the handler returns; nothing in it refers to broker memory.
class Message final {
public:
    /// Everything a message carries. Tests build messages with designated
    /// initializers: `Message({.body = "{}", .message_id = "m-1"})`.
    struct Fields {
        std::string body{};  ///< Binary-safe.
        std::string message_id{};
        std::string correlation_id{};
        std::string content_type{};
        Headers headers{};
        std::string exchange{};
        std::string routing_key{};
        bool redelivered = false;
        int attempt = 1;  ///< 1 on first delivery; counts handling attempts.
    };

    explicit Message(Fields fields) : fields_(std::move(fields)) {}

    [[nodiscard]] std::string_view body() const noexcept { return fields_.body; }
    [[nodiscard]] std::string_view message_id() const noexcept { return fields_.message_id; }
    [[nodiscard]] std::string_view correlation_id() const noexcept { return fields_.correlation_id; }
    [[nodiscard]] std::string_view content_type() const noexcept { return fields_.content_type; }
    [[nodiscard]] const Headers& headers() const noexcept { return fields_.headers; }
    [[nodiscard]] std::string_view exchange() const noexcept { return fields_.exchange; }
    [[nodiscard]] std::string_view routing_key() const noexcept { return fields_.routing_key; }
    [[nodiscard]] bool redelivered() const noexcept { return fields_.redelivered; }
    [[nodiscard]] int attempt() const noexcept { return fields_.attempt; }

    /// The same message, as seen by attempt `attempt`.
    [[nodiscard]] Message with_attempt(int attempt) const {
        Fields fields = fields_;
        fields.attempt = attempt;
        return Message(std::move(fields));
    }

    /// The header's text, or nullopt when the message has no such header.
    [[nodiscard]] std::optional<std::string_view> header(std::string_view name) const {
        const auto it = fields_.headers.find(name);
        if (it == fields_.headers.end()) return std::nullopt;
        return std::string_view(it->second);
    }

private:
    Fields fields_;
};

}  // namespace idemq
