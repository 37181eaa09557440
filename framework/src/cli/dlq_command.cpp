// The dlq command line: its subcommands and flags, which DLQ they act on,
// and the rule that acting on everything needs --all. The commands
// themselves: dlq_inspect.cpp (list, show), dlq_republish.cpp (replay,
// import), dlq_export.cpp (export, purge).
#include "cli/dlq_command.hpp"

#include <idemq/errors.hpp>

#include <fmt/format.h>

#include "amqp/topology.hpp"
#include "common/environment_setting.hpp"

namespace idemq::detail {

DlqCommand::DlqCommand(CLI::App& parent, std::vector<Route> routes) : routes_(std::move(routes)) {
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
    broker_flags_.add_to(*import_);
    import_->add_option("file", in_file_, "JSON-lines file written by dlq export")->required();
    import_->add_option("--to-queue", to_queue_, "publish to this queue (default exchange) instead");

    purge_ = dlq_->add_subcommand("purge", "Delete matching messages, printing each");
    add_common(*purge_);
    add_filters(*purge_);
    purge_->add_flag("--yes", yes_, "really delete")->required();
}

void DlqCommand::add_common(CLI::App& command) {
    broker_flags_.add_to(command);
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
        if (routes_.empty()) throw ConfigError("--queue is required");
        std::string names;
        for (const auto& route : routes_) names += (names.empty() ? "" : ", ") + route.handler;
        throw ConfigError(fmt::format("this worker has several handlers: say which DLQ with --handler ({})", names));
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
    broker_ = broker_flags_.resolve();
    for (const auto& text : header_filters_) filter_.headers.push_back(parse_header_filter(text));
    if (list_->parsed()) return list();
    if (show_->parsed()) return show();
    if (replay_->parsed()) return replay();
    if (export_->parsed()) return export_messages();
    if (import_->parsed()) return import_messages();
    return purge();
}

}  // namespace idemq::detail
