#include "cli/dlq_command.hpp"

#include <idemq/errors.hpp>
#include <idemq/options.hpp>

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "amqp/confirmed_publisher.hpp"
#include "amqp/connection.hpp"
#include "amqp/dead_letter.hpp"
#include "amqp/queue_reader.hpp"
#include "amqp/topology.hpp"
#include "amqp/value.hpp"
#include "common/base64.hpp"
#include "common/text.hpp"

namespace idemq::detail {
namespace {

using std::chrono::milliseconds;

// The tools' publisher connection; at most kWindow publishes unconfirmed at once.
AmqpConnection::Settings publisher_settings(const std::string& url) {
    return {.url = url, .connection_name = "idemq dlq tool publisher", .heartbeat = std::chrono::seconds(0)};
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

std::string or_dash(const std::string& text) { return text.empty() ? "-" : text; }

nlohmann::json view_json(const DeadLetterView& v) {
    // Ids are bytes from the wire: exact, as in the export format.
    return {{"message_id", bytes_to_json(v.message_id)},
            {"reason", v.reason},
            {"error_type", v.error_type},
            {"error", v.error},
            {"handler", v.handler},
            {"attempts", v.attempts},
            {"failed_at", v.failed_at},
            {"size", v.size},
            {"correlation_id", bytes_to_json(v.correlation_id)},
            {"replay_count", v.replay_count},
            {"original_exchange", v.original_exchange},
            {"original_routing_key", v.original_routing_key}};
}

std::string dump(const nlohmann::json& json) {
    return json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

DlqCommand::DlqCommand(CLI::App& parent, std::vector<Route> routes) : routes_(std::move(routes)) {
    if (const char* url = std::getenv("IDEMQ_AMQP_URL")) amqp_url_ = url;
    dlq_ = parent.add_subcommand("dlq", "Inspect, replay, export, import and purge dead-lettered messages");
    dlq_->require_subcommand(1);

    list_ = dlq_->add_subcommand("list", "One line per dead-lettered message, then counts by reason and error type");
    add_common(*list_);
    add_filters(*list_);
    list_->add_flag("--json", json_, "JSON lines: one per message, then a summary line");

    show_ = dlq_->add_subcommand("show", "All properties, headers and the body of a message");
    add_common(*show_);
    show_->add_option("message-id", show_id_, "message id")->required();

    replay_ = dlq_->add_subcommand("replay", "Republish matching messages to where they were first published");
    add_common(*replay_);
    add_filters(*replay_);
    replay_->add_option("--to-queue", to_queue_, "publish to this queue (default exchange) instead");
    replay_->add_option("--limit", limit_, "replay at most N messages");
    replay_->add_option("--rate", rate_, "at most this many messages per second");
    replay_->add_flag("--dry-run", dry_run_, "show what would be replayed; change nothing");

    export_ = dlq_->add_subcommand("export", "Write matching messages to a JSON-lines file (body in base64)");
    add_common(*export_);
    add_filters(*export_);
    export_->add_option("--out", out_file_, "file to write")->required();
    export_->add_flag("--move", move_, "remove the exported messages from the DLQ once the file is written");

    import_ = dlq_->add_subcommand("import", "Publish the messages of an exported file (each with confirms)");
    import_->add_option("--amqp-url", amqp_url_, "AMQP URL (default: IDEMQ_AMQP_URL)");
    import_->add_option("file", in_file_, "JSON-lines file written by dlq export")->required();
    import_->add_option("--to-queue", to_queue_, "publish to this queue (default exchange) instead");

    purge_ = dlq_->add_subcommand("purge", "Delete matching messages, printing each");
    add_common(*purge_);
    add_filters(*purge_);
    purge_->add_flag("--yes", yes_, "really delete")->required();
}

void DlqCommand::add_common(CLI::App& command) {
    command.add_option("--amqp-url", amqp_url_, "AMQP URL (default: IDEMQ_AMQP_URL)");
    command.add_option("--queue", queue_, "the work queue (its DLQ is <queue>.dlq) or the DLQ itself");
    if (routes_.size() > 1) command.add_option("--handler", handler_, "the handler whose DLQ to use");
}

void DlqCommand::add_filters(CLI::App& command) {
    command.add_option("--message-id", filter_.message_ids, "only this message id (repeatable)");
    command.add_option("--reason", filter_.reason, "only this x-idemq-reason");
    command.add_option("--error-type", filter_.error_type, "only this exception type");
    command.add_option("--since", filter_.since, "failed at or after this UTC time (RFC 3339, e.g. 2026-11-24T06:00)");
    command.add_option("--until", filter_.until, "failed before this UTC time");
    command.add_option("--header", header_filters_, "only messages with header NAME=VALUE (repeatable)");
    command.add_flag("--all", filter_.all, "act on every message (required when no filter is given)");
}

bool DlqCommand::parsed() const { return dlq_->parsed(); }

std::string DlqCommand::dead_letter_queue() const {
    std::string queue;
    if (queue_) {
        queue = *queue_;
    } else if (handler_) {
        for (const auto& route : routes_) {
            if (route.handler == *handler_) queue = route.queue.empty() ? route.handler : route.queue;
        }
        if (queue.empty()) throw ConfigError(fmt::format("--handler: no handler named '{}'", *handler_));
    } else if (routes_.size() == 1) {
        queue = routes_.front().queue.empty() ? routes_.front().handler : routes_.front().queue;
    } else {
        throw ConfigError(routes_.empty() ? "--queue is required" : "--queue or --handler is required");
    }
    return queue.ends_with(".dlq") ? queue : dead_letter_queue_name(queue);
}

void DlqCommand::require_selection() const {
    if (filter_.selects_everything() && !filter_.all) {
        throw ConfigError(
            "no filter given: name messages with --message-id, --reason, --error-type, --since, "
            "--until or --header, or pass --all to act on every message");
    }
}

int DlqCommand::run() {
    if (amqp_url_.empty()) throw ConfigError("IDEMQ_AMQP_URL (or --amqp-url) is not set");
    for (const auto& text : header_filters_) filter_.headers.push_back(parse_header_filter(text));
    if (list_->parsed()) return list();
    if (show_->parsed()) return show();
    if (replay_->parsed()) return replay();
    if (export_->parsed()) return export_messages();
    if (import_->parsed()) return import_messages();
    return purge();
}

int DlqCommand::list() {
    const std::string queue = dead_letter_queue();
    QueueReader reader(amqp_url_, queue);
    std::map<std::pair<std::string, std::string>, std::uint64_t> groups;
    std::uint64_t listed = 0;
    if (!json_) {
        fmt::print("{:<36} {:<26} {:<28} {:>8} {:<24} {:>8} {:<24} {:>7}\n", "MESSAGE ID", "REASON", "ERROR TYPE",
                   "ATTEMPTS", "LAST FAILURE (UTC)", "BYTES", "CORRELATION ID", "REPLAYS");
    }
    while (auto delivery = reader.next()) {
        const DeadLetterView view = view_of(*delivery);
        if (!filter_.matches(view)) continue;
        ++listed;
        ++groups[{view.reason, view.error_type}];
        if (json_) {
            fmt::print("{}\n", dump(view_json(view)));
        } else {
            fmt::print("{:<36} {:<26} {:<28} {:>8} {:<24} {:>8} {:<24} {:>7}\n", or_dash(view.message_id),
                       or_dash(view.reason), or_dash(view.error_type), view.attempts, or_dash(view.failed_at),
                       view.size, or_dash(view.correlation_id), view.replay_count);
        }
    }
    if (json_) {
        auto summary = nlohmann::json::array();
        for (const auto& [key, count] : groups) {
            summary.push_back({{"reason", key.first}, {"error_type", key.second}, {"count", count}});
        }
        fmt::print("{}\n",
                   dump({{"summary", summary}, {"listed", listed}, {"queue", queue}, {"in_queue", reader.total()}}));
        return 0;
    }
    fmt::print("\n{} of {} message(s) in {}, by reason and error type:\n", listed, reader.total(), queue);
    for (const auto& [key, count] : groups) {
        fmt::print("  {:>6}  {:<26} {}\n", count, or_dash(key.first), or_dash(key.second));
    }
    return 0;
}

int DlqCommand::show() {
    const std::string queue = dead_letter_queue();
    QueueReader reader(amqp_url_, queue);
    int found = 0;
    while (auto delivery = reader.next()) {
        if (delivery->properties.message_id() != show_id_) continue;
        ++found;
        const bool text = is_utf8(delivery->body);
        nlohmann::json out = {{"queue", queue},
                              {"properties", delivery->properties.to_json()},
                              {"body_encoding", text ? "text" : "base64"},
                              {"body_bytes", delivery->body.size()}};
        fmt::print("{}\n", out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
        fmt::print("--- body ({}) ---\n{}\n", text ? "text" : "base64",
                   text ? delivery->body : base64_encode(delivery->body));
    }
    if (found == 0) {
        fmt::print(stderr, "no message with id '{}' in {}\n", show_id_, queue);
        return 1;
    }
    return 0;
}

int DlqCommand::replay() {
    require_selection();
    const std::string queue = dead_letter_queue();
    QueueReader reader(amqp_url_, queue);
    std::optional<BlockingPublisher> publisher;
    if (!dry_run_) publisher.emplace(publisher_settings(amqp_url_), kWindow);
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

int DlqCommand::export_messages() {
    if (move_) require_selection();
    const std::string queue = dead_letter_queue();
    QueueReader reader(amqp_url_, queue);
    // Written next to the target and renamed at the end: a killed export
    // never leaves a file that looks complete.
    const std::string temporary = out_file_ + ".partial";
    std::vector<std::uint64_t> exported;
    {
        std::FILE* file = std::fopen(temporary.c_str(), "w");
        if (file == nullptr) throw ConfigError(fmt::format("--out: cannot write '{}'", temporary));
        while (auto delivery = reader.next()) {
            const DeadLetterView view = view_of(*delivery);
            if (!filter_.matches(view)) continue;
            // Every text that came from the wire is written byte-exact: a
            // string when it is UTF-8, else {"$string_base64": ...}.
            const nlohmann::json record = {{"message_id", bytes_to_json(view.message_id)},
                                           {"reason", bytes_to_json(view.reason)},
                                           {"original_exchange", bytes_to_json(view.original_exchange)},
                                           {"original_routing_key", bytes_to_json(view.original_routing_key)},
                                           {"properties", delivery->properties.to_json()},
                                           {"body_base64", base64_encode(delivery->body)}};
            fmt::print(file, "{}\n", dump(record));
            exported.push_back(delivery->delivery_tag);
        }
        const bool written = std::fflush(file) == 0 && fsync(fileno(file)) == 0;
        std::fclose(file);
        if (!written) throw Error(fmt::format("could not write '{}'", temporary));
    }
    std::filesystem::rename(temporary, out_file_);
    if (move_) {
        // The rename itself must survive a power loss before the originals go.
        const auto directory = std::filesystem::absolute(out_file_).parent_path();
        const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY);
        const bool synced = fd >= 0 && fsync(fd) == 0;
        if (fd >= 0) ::close(fd);
        if (!synced) throw Error(fmt::format("could not sync directory '{}'; nothing was removed", directory.string()));
        for (const std::uint64_t tag : exported) reader.ack(tag);
    }
    fmt::print("exported {} message(s) from {} to {}{}\n", exported.size(), queue, out_file_,
               move_ ? " and removed them from the queue" : "");
    return 0;
}

int DlqCommand::import_messages() {
    std::ifstream in(in_file_);
    if (!in) throw ConfigError(fmt::format("cannot read '{}'", in_file_));
    BlockingPublisher publisher(publisher_settings(amqp_url_), kWindow);
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

int DlqCommand::purge() {
    require_selection();
    const std::string queue = dead_letter_queue();
    QueueReader reader(amqp_url_, queue);
    std::uint64_t removed = 0;
    while (auto delivery = reader.next()) {
        const DeadLetterView view = view_of(*delivery);
        if (!filter_.matches(view)) continue;
        reader.ack(delivery->delivery_tag);
        ++removed;
        fmt::print("removed {} ({}: {})\n", or_dash(view.message_id), or_dash(view.reason), or_dash(view.error));
    }
    fmt::print("purged {} message(s); {} left in {}\n", removed, reader.total() - removed, queue);
    return 0;
}

}  // namespace idemq::detail
