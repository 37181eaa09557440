#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "cli/broker_flags.hpp"

// The idemqctl subcommands that are more than a few lines, one file each.
namespace idemqctl {

// `trace <message-id>`: where is this message? Looks in the inbox, in the
// delay queues and in the given handlers' dead-letter queues.
class TraceCommand {
public:
    explicit TraceCommand(CLI::App& parent);
    [[nodiscard]] bool parsed() const { return command_->parsed(); }
    int run();

private:
    CLI::App* command_;
    std::string message_id_;
    std::string database_url_;
    std::string schema_ = "idemq";
    idemq::detail::BrokerFlags broker_flags_;
    std::vector<std::string> queues_;
};

// `inbox prune`: deletes inbox rows older than the retention window.
class InboxCommand {
public:
    explicit InboxCommand(CLI::App& parent);
    [[nodiscard]] bool parsed() const { return command_->parsed(); }
    int run();

private:
    CLI::App* command_;
    CLI::App* prune_;
    std::string database_url_;
    std::string schema_ = "idemq";
    std::string older_than_ = "14d";
    std::size_t batch_ = 1000;
};

// `outbox list | retry | purge`: rows not yet published, and what an
// operator does with parked ones.
class OutboxCommand {
public:
    explicit OutboxCommand(CLI::App& parent);
    [[nodiscard]] bool parsed() const { return command_->parsed(); }
    int run();

private:
    CLI::App* command_;
    CLI::App* list_;
    CLI::App* retry_;
    CLI::App* purge_;
    std::string database_url_;
    std::string schema_ = "idemq";
    std::vector<long long> ids_;
    bool parked_ = false;
    bool dry_run_ = false;
    bool yes_ = false;
    long long limit_ = 1000;
};

}  // namespace idemqctl
