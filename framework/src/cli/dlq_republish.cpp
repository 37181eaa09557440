// `dlq replay` and `dlq import`: they publish copies, with confirms, to
// where the messages were first published (or --to-queue), as new messages
// whose retry count starts again.
#include <idemq/errors.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <thread>

#include "amqp/confirmed_publisher.hpp"
#include "amqp/connection.hpp"
#include "amqp/dead_letter.hpp"
#include "amqp/queue_reader.hpp"
#include "amqp/value.hpp"
#include "cli/dlq_command.hpp"
#include "cli/dlq_output.hpp"
#include "common/base64.hpp"
#include "common/text.hpp"

namespace idemq::detail {
namespace {

// The tools' publisher connection; at most kWindow publishes unconfirmed at once.
AmqpConnection::Settings publisher_settings(const BrokerTarget& broker) {
    return {.url = broker.url,
            .security = broker.security,
            .connection_name = "idemq dlq tool publisher",
            .heartbeat = std::chrono::seconds(0)};
}
constexpr std::size_t kWindow = 500;

// The properties of a replayed or imported copy: every x-idemq-* header of
// its failed life dropped (so the attempt count starts again), the replay
// recorded; like every copy idemq publishes, without routing headers and
// bounded to fit in a frame.
OwnedProperties replay_properties(const OwnedProperties& properties, std::int64_t previous_replays) {
    return properties.with_headers({}, header::kPrefix)
        .for_republish({{std::string(header::kReplayedAt), format_time(std::chrono::system_clock::now())},
                        {std::string(header::kReplayCount), previous_replays + 1}});
}

// Paces a loop to `rate` iterations per second (0: no limit).
class Pace {
public:
    explicit Pace(double rate) : rate_(rate), start_(std::chrono::steady_clock::now()) {}
    void step() {
        if (rate_ <= 0) return;
        ++count_;
        const auto due = start_ + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                      std::chrono::duration<double>(static_cast<double>(count_) / rate_));
        std::this_thread::sleep_until(due);
    }

private:
    double rate_;
    std::chrono::steady_clock::time_point start_;
    std::uint64_t count_ = 0;
};

}  // namespace

int DlqCommand::replay() {
    require_selection();
    const std::string queue = dead_letter_queue();
    QueueReader reader(broker_.url, broker_.security, queue);
    std::optional<BlockingPublisher> publisher;
    if (!dry_run_) publisher.emplace(publisher_settings(broker_), kWindow);
    Pace pace(rate_);
    std::uint64_t matched = 0;
    std::uint64_t replayed = 0;
    std::uint64_t failed = 0;
    std::uint64_t unroutable = 0;
    while (auto delivery = reader.next()) {
        const DeadLetterView view = view_of(*delivery);
        if (!filter_.matches(view) || (limit_ && matched >= *limit_)) continue;
        std::string exchange = to_queue_ ? "" : view.original_exchange;
        std::string routing_key = to_queue_ ? *to_queue_ : view.original_routing_key;
        if (!to_queue_ && exchange.empty() && routing_key.empty()) {
            ++unroutable;
            fmt::print(stderr, "skipped {}: no x-idemq-original-exchange/-routing-key header; use --to-queue\n",
                       or_dash(view.message_id));
            continue;
        }
        ++matched;
        if (dry_run_) {
            fmt::print("would replay {} ({}) to exchange '{}' with routing key '{}'\n", or_dash(view.message_id),
                       or_dash(view.reason), exchange, routing_key);
            continue;
        }
        const std::uint64_t tag = delivery->delivery_tag;
        // The DLQ copy is acked only once the broker confirmed the new one: a
        // kill in between leaves both, and the inbox absorbs the duplicate.
        publisher->publish(std::move(exchange), std::move(routing_key),
                           replay_properties(delivery->properties, view.replay_count), std::move(delivery->body),
                           [&, tag, id = view.message_id](std::optional<std::string> error) {
                               if (error) {
                                   ++failed;
                                   fmt::print(stderr, "not replayed {}: {}\n", or_dash(id), *error);
                                   return;
                               }
                               reader.ack(tag);
                               ++replayed;
                           });
        pace.step();
    }
    if (publisher) publisher->wait_all();
    const std::uint64_t left = reader.total() - replayed;
    if (dry_run_) {
        fmt::print("dry run: {} message(s) would be replayed; {} in {} unchanged\n", matched, reader.total(), queue);
    } else {
        fmt::print("matched {}, replayed {}, left {} in {}\n", matched, replayed, left, queue);
    }
    return failed == 0 && unroutable == 0 ? 0 : 1;
}

int DlqCommand::import_messages() {
    std::ifstream in(in_file_);
    if (!in) throw ConfigError(fmt::format("cannot read '{}'", in_file_));
    BlockingPublisher publisher(publisher_settings(broker_), kWindow);
    std::uint64_t published = 0;
    std::uint64_t failed = 0;
    std::string line;
    for (std::size_t number = 1; std::getline(in, line); ++number) {
        if (line.empty()) continue;
        const auto record = nlohmann::json::parse(line, nullptr, false);
        if (record.is_discarded() || !record.is_object() || !record.contains("properties") ||
            !record.contains("body_base64")) {
            throw ConfigError(fmt::format("{}:{}: not a record written by dlq export", in_file_, number));
        }
        const auto text_field = [&](const char* name) {
            const auto it = record.find(name);
            return it == record.end() ? std::string() : bytes_from_json(*it).value_or(std::string());
        };
        std::string exchange = to_queue_ ? "" : text_field("original_exchange");
        std::string routing_key = to_queue_ ? *to_queue_ : text_field("original_routing_key");
        if (!to_queue_ && exchange.empty() && routing_key.empty()) {
            throw ConfigError(fmt::format("{}:{}: no original destination; use --to-queue", in_file_, number));
        }
        std::optional<OwnedProperties> properties;
        std::string body;
        try {
            properties.emplace(OwnedProperties::from_json(record["properties"]));
            if (!record["body_base64"].is_string()) throw Error("body_base64 is not a string");
            body = base64_decode(record["body_base64"].get_ref<const std::string&>());
        } catch (const Error& e) {
            throw ConfigError(fmt::format("{}:{}: not a record written by dlq export: {}", in_file_, number, e.what()));
        }
        const std::int64_t previous = properties->int_header(header::kReplayCount).value_or(0);
        publisher.publish(std::move(exchange), std::move(routing_key), replay_properties(*properties, previous),
                          std::move(body), [&, number](std::optional<std::string> error) {
                              if (error) {
                                  ++failed;
                                  fmt::print(stderr, "{}:{}: not published: {}\n", in_file_, number, *error);
                              } else {
                                  ++published;
                              }
                          });
    }
    publisher.wait_all();
    fmt::print("imported {} message(s) from {}{}\n", published, in_file_,
               failed > 0 ? fmt::format(" ({} failed)", failed) : "");
    return failed == 0 ? 0 : 1;
}

}  // namespace idemq::detail
