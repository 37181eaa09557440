#include "amqp/connection.hpp"

#include <idemq/errors.hpp>

#include <amqp_framing.h>
#include <fmt/format.h>
#include <sys/time.h>

#include <algorithm>
#include <array>

#include "common/config_text.hpp"

namespace idemq::detail {
namespace {

constexpr amqp_channel_t kChannel = 1;
// 128 KiB frames, the broker's default: large bodies go in fewer frames.
constexpr int kFrameMax = static_cast<int>(kDefaultFrameMax);
// A frame's type, channel and size, and its end octet.
constexpr std::size_t kFrameOverhead = 8;

timeval to_timeval(std::chrono::milliseconds ms) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
    return tv;
}

amqp_table_entry_t bool_entry(const char* key, bool value) {
    amqp_table_entry_t entry{};
    entry.key = amqp_cstring_bytes(key);
    entry.value.kind = AMQP_FIELD_KIND_BOOLEAN;
    entry.value.value.boolean = value ? 1 : 0;
    return entry;
}

}  // namespace

AmqpConnection::AmqpConnection(const Settings& settings) {
    std::string url = settings.url;
    amqp_connection_info info{};
    amqp_default_connection_info(&info);
    // url_is_well_formed: also refuses what rabbitmq-c would misread, e.g. a
    // host that is the tail of a password with an unencoded '@'.
    if (!url_is_well_formed(settings.url) || amqp_parse_url(url.data(), &info) != AMQP_STATUS_OK) {
        throw ConfigError(fmt::format("IDEMQ_AMQP_URL is not a valid AMQP URL: {}", redact_url(settings.url)));
    }

    state_ = amqp_new_connection();
    if (state_ == nullptr) throw std::bad_alloc();
    try {
        open_broker_socket(state_, info.ssl != 0, info.host, info.port, settings.security,
                           to_timeval(settings.timeout));
        timeval rpc_timeout = to_timeval(settings.timeout);
        amqp_set_rpc_timeout(state_, &rpc_timeout);
        amqp_set_handshake_timeout(state_, &rpc_timeout);

        // rabbitmq-c announces none of these unless asked; without them the
        // broker neither tells us of a cancelled consumer nor of a blocked
        // connection.
        std::array capabilities{bool_entry("consumer_cancel_notify", true), bool_entry("connection.blocked", true),
                                bool_entry("publisher_confirms", true), bool_entry("basic.nack", true),
                                bool_entry("authentication_failure_close", true)};
        std::array<amqp_table_entry_t, 2> client_properties{};
        client_properties[0].key = amqp_cstring_bytes("capabilities");
        client_properties[0].value.kind = AMQP_FIELD_KIND_TABLE;
        client_properties[0].value.value.table.num_entries = static_cast<int>(capabilities.size());
        client_properties[0].value.value.table.entries = capabilities.data();
        client_properties[1].key = amqp_cstring_bytes("connection_name");
        client_properties[1].value.kind = AMQP_FIELD_KIND_UTF8;
        client_properties[1].value.value.bytes = as_amqp_bytes(settings.connection_name);
        amqp_table_t properties{static_cast<int>(client_properties.size()), client_properties.data()};

        const bool external = settings.security.auth == AmqpAuth::external;
        // EXTERNAL sends no password: the broker takes the user from the
        // client certificate. rabbitmq-c cannot send an empty identity
        // (it fails to allocate zero bytes), and RabbitMQ ignores it.
        const amqp_rpc_reply_t reply =
            external ? amqp_login_with_properties(state_, info.vhost, 0, kFrameMax,
                                                  static_cast<int>(settings.heartbeat.count()), &properties,
                                                  AMQP_SASL_METHOD_EXTERNAL, info.user)
                     : amqp_login_with_properties(state_, info.vhost, 0, kFrameMax,
                                                  static_cast<int>(settings.heartbeat.count()), &properties,
                                                  AMQP_SASL_METHOD_PLAIN, info.user, info.password);
        if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
            const std::string where = fmt::format("logging in to {}", redact_url(settings.url));
            if (reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION) {
                throw BrokerError(
                    fmt::format("{}: the broker refused the connection (check {} and access to vhost '{}'; the "
                                "default vhost is written %2f)",
                                where,
                                external ? "that the broker offers EXTERNAL and knows the user named by the "
                                           "client certificate (IDEMQ_AMQP_CERT)"
                                         : "the user, the password",
                                info.vhost),
                    true);
            }
            std::string reason = describe_library_error(reply.library_error);
            // A broker that wants a client certificate checks for one only
            // after the TLS 1.3 handshake, and drops the session at login;
            // rabbitmq-c keeps no trace of its alert.
            if (info.ssl != 0 && settings.security.tls.cert_file.empty() &&
                reply.library_error == AMQP_STATUS_SSL_ERROR) {
                reason +=
                    ": the broker ended the TLS session at login; if it requires a client certificate, set "
                    "IDEMQ_AMQP_CERT and IDEMQ_AMQP_KEY";
            }
            throw BrokerError(fmt::format("{}: {}", where, reason), true);
        }
        open_ = true;
        open_channel();
    } catch (...) {
        amqp_destroy_connection(state_);
        state_ = nullptr;
        throw;
    }
}

AmqpConnection::~AmqpConnection() {
    close();
    if (state_ != nullptr) amqp_destroy_connection(state_);
}

void AmqpConnection::close() noexcept {
    if (!open_) return;
    open_ = false;
    // A peer that went silent must not hold the caller for long.
    timeval quick = to_timeval(std::chrono::milliseconds(2'000));
    amqp_set_rpc_timeout(state_, &quick);
    amqp_channel_close(state_, kChannel, AMQP_REPLY_SUCCESS);
    amqp_connection_close(state_, AMQP_REPLY_SUCCESS);
}

int AmqpConnection::fd() const noexcept { return amqp_get_sockfd(state_); }
int AmqpConnection::frame_max() const noexcept { return amqp_get_frame_max(state_); }

void AmqpConnection::open_channel() {
    amqp_channel_open(state_, kChannel);
    check_reply("opening a channel");
}

void AmqpConnection::check_status(int status, std::string_view what) {
    if (status >= 0) return;
    open_ = false;
    throw BrokerError(fmt::format("AMQP {} failed: {}", what, describe_library_error(status)), true);
}

// The one place an amqp_rpc_reply_t becomes an exception.
void AmqpConnection::check_reply(std::string_view what) {
    const amqp_rpc_reply_t reply = amqp_get_rpc_reply(state_);
    switch (reply.reply_type) {
        case AMQP_RESPONSE_NORMAL: return;
        case AMQP_RESPONSE_NONE: open_ = false; throw BrokerError(fmt::format("AMQP {}: no reply", what), true);
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            open_ = false;
            throw BrokerError(fmt::format("AMQP {} failed: {}", what, describe_library_error(reply.library_error)),
                              true);
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
                const auto& m = *static_cast<const amqp_connection_close_t*>(reply.reply.decoded);
                amqp_connection_close_ok_t ok{};
                amqp_send_method(state_, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
                open_ = false;
                throw BrokerError(fmt::format("AMQP {}: the broker closed the connection: {} {}", what, m.reply_code,
                                              to_string(m.reply_text)),
                                  true);
            }
            if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
                const auto& m = *static_cast<const amqp_channel_close_t*>(reply.reply.decoded);
                const std::string message = fmt::format("AMQP {}: the broker closed the channel: {} {}", what,
                                                        m.reply_code, to_string(m.reply_text));
                amqp_channel_close_ok_t ok{};
                amqp_send_method(state_, kChannel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
                throw BrokerError(message, false);
            }
            throw BrokerError(fmt::format("AMQP {}: unexpected server reply {:#x}", what, reply.reply.id), true);
    }
}

void AmqpConnection::declare_exchange(std::string_view name, std::string_view type) {
    amqp_exchange_declare(state_, kChannel, as_amqp_bytes(name), as_amqp_bytes(type), 0, 1, 0, 0, amqp_empty_table);
    check_reply(fmt::format("declaring exchange '{}'", name));
}

void AmqpConnection::declare_queue(std::string_view name) {
    amqp_queue_declare(state_, kChannel, as_amqp_bytes(name), 0, 1, 0, 0, amqp_empty_table);
    check_reply(fmt::format("declaring queue '{}'", name));
}

void AmqpConnection::bind_queue(std::string_view queue, std::string_view exchange, std::string_view routing_key) {
    amqp_queue_bind(state_, kChannel, as_amqp_bytes(queue), as_amqp_bytes(exchange), as_amqp_bytes(routing_key),
                    amqp_empty_table);
    check_reply(fmt::format("binding queue '{}' to exchange '{}' with key '{}'", queue, exchange, routing_key));
}

std::optional<AmqpConnection::QueueCounts> AmqpConnection::inspect_queue(std::string_view name) {
    const auto* ok = amqp_queue_declare(state_, kChannel, as_amqp_bytes(name), 1, 0, 0, 0, amqp_empty_table);
    try {
        check_reply(fmt::format("inspecting queue '{}'", name));
    } catch (const BrokerError& e) {
        if (e.connection_level()) throw;
        open_channel();
        return std::nullopt;
    }
    return QueueCounts{.messages = ok->message_count, .consumers = ok->consumer_count};
}

bool AmqpConnection::exchange_exists(std::string_view name) {
    if (name.empty()) return true;  // the default exchange
    amqp_exchange_declare(state_, kChannel, as_amqp_bytes(name), amqp_cstring_bytes("topic"), 1, 0, 0, 0,
                          amqp_empty_table);
    try {
        check_reply(fmt::format("checking exchange '{}'", name));
    } catch (const BrokerError& e) {
        if (e.connection_level()) throw;
        open_channel();
        return false;
    }
    return true;
}

void AmqpConnection::set_prefetch(std::uint16_t count) {
    amqp_basic_qos(state_, kChannel, 0, count, 0);
    check_reply("setting the prefetch count");
}

void AmqpConnection::consume(std::string_view queue, std::string_view consumer_tag) {
    amqp_basic_consume(state_, kChannel, as_amqp_bytes(queue), as_amqp_bytes(consumer_tag), 0, 0, 0, amqp_empty_table);
    check_reply(fmt::format("consuming from queue '{}'", queue));
}

void AmqpConnection::consume_async(std::string_view queue, std::string_view consumer_tag) {
    amqp_basic_consume_t method{};
    method.queue = as_amqp_bytes(queue);
    method.consumer_tag = as_amqp_bytes(consumer_tag);
    method.arguments = amqp_empty_table;
    check_status(amqp_send_method(state_, kChannel, AMQP_BASIC_CONSUME_METHOD, &method), "basic.consume");
}

void AmqpConnection::declare_delay_tier(std::string_view name, std::chrono::milliseconds ttl) {
    declare_exchange(name, "fanout");
    std::array<amqp_table_entry_t, 2> arguments{};
    arguments[0].key = amqp_cstring_bytes("x-message-ttl");
    arguments[0].value.kind = AMQP_FIELD_KIND_I64;
    arguments[0].value.value.i64 = ttl.count();
    arguments[1].key = amqp_cstring_bytes("x-dead-letter-exchange");
    arguments[1].value.kind = AMQP_FIELD_KIND_UTF8;
    arguments[1].value.value.bytes = amqp_cstring_bytes("");
    const amqp_table_t table{static_cast<int>(arguments.size()), arguments.data()};
    amqp_queue_declare(state_, kChannel, as_amqp_bytes(name), 0, 1, 0, 0, table);
    check_reply(fmt::format("declaring delay queue '{}'", name));
    bind_queue(name, name, "");
}

void AmqpConnection::enable_publisher_confirms() {
    amqp_confirm_select(state_, kChannel);
    check_reply("enabling publisher confirms");
}

std::optional<Delivery> AmqpConnection::get(std::string_view queue) {
    const amqp_rpc_reply_t reply = amqp_basic_get(state_, kChannel, as_amqp_bytes(queue), 0);
    if (reply.reply_type == AMQP_RESPONSE_NORMAL && reply.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) return std::nullopt;
    check_reply(fmt::format("getting a message from queue '{}'", queue));
    const auto& ok = *static_cast<const amqp_basic_get_ok_t*>(reply.reply.decoded);
    Delivery delivery;
    delivery.delivery_tag = ok.delivery_tag;
    delivery.redelivered = ok.redelivered != 0;
    delivery.exchange = to_string(ok.exchange);
    delivery.routing_key = to_string(ok.routing_key);
    amqp_message_t message{};
    const amqp_rpc_reply_t content = amqp_read_message(state_, kChannel, &message, 0);
    if (content.reply_type != AMQP_RESPONSE_NORMAL) {
        open_ = false;
        throw BrokerError(fmt::format("AMQP reading a message from queue '{}' failed", queue), true);
    }
    delivery.properties = OwnedProperties(message.properties);
    delivery.body = to_string(message.body);
    amqp_destroy_message(&message);
    amqp_maybe_release_buffers(state_);
    return delivery;
}

void AmqpConnection::ack(std::uint64_t delivery_tag, bool multiple) {
    check_status(amqp_basic_ack(state_, kChannel, delivery_tag, multiple ? 1 : 0), "basic.ack");
}

void AmqpConnection::reject(std::uint64_t delivery_tag, bool requeue) {
    check_status(amqp_basic_reject(state_, kChannel, delivery_tag, requeue ? 1 : 0), "basic.reject");
}

void AmqpConnection::cancel(std::string_view consumer_tag) {
    amqp_basic_cancel_t method{};
    method.consumer_tag = as_amqp_bytes(consumer_tag);
    method.nowait = 0;
    check_status(amqp_send_method(state_, kChannel, AMQP_BASIC_CANCEL_METHOD, &method), "basic.cancel");
}

void AmqpConnection::publish(std::string_view exchange, std::string_view routing_key, bool mandatory,
                             const OwnedProperties& properties, std::string_view body) {
    if (exchange.size() > 255 || routing_key.size() > 255) {
        throw UnencodablePublish(fmt::format("exchange or routing key longer than 255 bytes ({} and {})",
                                             exchange.size(), routing_key.size()));
    }
    const auto size = properties.encoded_size();
    const auto frame_max = static_cast<std::size_t>(std::max(amqp_get_frame_max(state_), 0));
    if (!size) throw UnencodablePublish("its properties cannot be encoded (a name over 255 bytes, or nested too deep)");
    if (*size + kFrameOverhead > frame_max) {
        throw UnencodablePublish(
            fmt::format("its properties take {} bytes, more than the frame_max of {} allows", *size, frame_max));
    }
    check_status(amqp_basic_publish(state_, kChannel, as_amqp_bytes(exchange), as_amqp_bytes(routing_key),
                                    mandatory ? 1 : 0, 0, &properties.get(), as_amqp_bytes(body)),
                 "basic.publish");
}

std::optional<AmqpEvent> AmqpConnection::poll_event() { return wait_event(std::chrono::milliseconds(0)); }

std::optional<AmqpEvent> AmqpConnection::wait_event(std::chrono::milliseconds timeout) {
    for (;;) {
        amqp_frame_t frame{};
        timeval tv = to_timeval(timeout);
        // A zero timeout makes rabbitmq-c wait until "time zero", which hides
        // an overdue heartbeat; one microsecond lets it notice a silent peer.
        if (timeout.count() == 0) tv.tv_usec = 1;
        const int status = amqp_simple_wait_frame_noblock(state_, &frame, &tv);
        if (status == AMQP_STATUS_TIMEOUT) return std::nullopt;
        check_status(status, "reading a frame");
        if (frame.channel != kChannel && frame.channel != 0) continue;
        std::optional<AmqpEvent> event;
        try {
            // Channel 0 (connection.blocked, connection.close) may interleave
            // with a message's content frames on channel 1.
            event = frame.channel == 0 ? control_.feed(frame) : assembler_.feed(frame);
        } catch (const BrokerError&) {
            open_ = false;
            throw;
        }
        // Everything the frame pointed to has been copied out.
        amqp_maybe_release_buffers(state_);
        if (event) return event;
    }
}

}  // namespace idemq::detail
