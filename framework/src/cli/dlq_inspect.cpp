// `dlq list` and `dlq show`: they read the DLQ and change nothing in it.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <map>

#include "amqp/queue_reader.hpp"
#include "amqp/value.hpp"
#include "cli/dlq_command.hpp"
#include "cli/dlq_output.hpp"
#include "common/base64.hpp"
#include "common/text.hpp"

namespace idemq::detail {
namespace {

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

}  // namespace

int DlqCommand::list() {
    const std::string queue = dead_letter_queue();
    QueueReader reader(broker_.url, broker_.security, queue);
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
    QueueReader reader(broker_.url, broker_.security, queue);
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

}  // namespace idemq::detail
