// `idemqctl outbox list | retry | purge`: the operator's view of the outbox,
// with the DLQ tools' safety rules: nothing is changed without naming the
// rows (--id) or saying --parked, purge also needs --yes, and --dry-run only
// shows what would happen.
#include <idemq/errors.hpp>

#include <fmt/format.h>
#include <pqxx/result>
#include <pqxx/transaction>

#include <cstdlib>
#include <optional>

#include "commands.hpp"
#include "common/environment_setting.hpp"
#include "common/text.hpp"
#include "inbox/database_session.hpp"
#include "inbox/store_sql.hpp"
#include "outbox/outbox_sql.hpp"

namespace idemqctl {
namespace {

// A bytea column read as hex, shown printable.
std::string shown(const pqxx::field& hex) {
    const std::string digits = hex.as<std::string>();
    std::string bytes;
    for (std::size_t i = 0; i + 1 < digits.size(); i += 2) {
        bytes += static_cast<char>(std::stoi(digits.substr(i, 2), nullptr, 16));
    }
    return idemq::detail::printable(bytes);
}

}  // namespace

OutboxCommand::OutboxCommand(CLI::App& parent) {
    if (const char* schema = std::getenv("IDEMQ_SCHEMA")) schema_ = schema;
    command_ = parent.add_subcommand("outbox", "Inspect the outbox, retry or purge parked rows");
    command_->require_subcommand(1);
    command_->add_option("--database-url", database_url_, "Postgres URL (default: IDEMQ_DATABASE_URL)");
    command_->add_option("--schema", schema_, "schema of idemq's tables (default: IDEMQ_SCHEMA or idemq)");
    list_ = command_->add_subcommand("list", "Rows not yet published, oldest first, with their state and last error");
    list_->add_flag("--parked", parked_, "only parked rows");
    list_->add_option("--limit", limit_, "at most this many rows")->capture_default_str();
    retry_ = command_->add_subcommand("retry", "Make parked (or waiting) rows due now; parked ones start over");
    purge_ = command_->add_subcommand("purge", "Delete parked rows: they are never published");
    for (CLI::App* change : {retry_, purge_}) {
        change->add_option("--id", ids_, "this row (repeatable)");
        change->add_flag("--parked", parked_, "every parked row");
        change->add_flag("--dry-run", dry_run_, "show what would change, change nothing");
    }
    purge_->add_flag("--yes", yes_, "really delete (the messages are lost)");
}

int OutboxCommand::run() {
    if (database_url_.empty())
        database_url_ = idemq::detail::setting_from_environment("IDEMQ_DATABASE_URL").value_or("");
    if (database_url_.empty()) throw idemq::ConfigError("IDEMQ_DATABASE_URL (or --database-url) is not set");
    auto connection = idemq::detail::open_database(database_url_, "idemqctl outbox");
    if (list_->parsed()) {
        pqxx::work tx(*connection);
        const auto rows = tx.exec_params(idemq::detail::outbox_list_sql(schema_), parked_, limit_);
        tx.commit();
        fmt::print("{:>10} {:<8} {:>8} {:<24} {:<20} {:<20} {:<38} {}\n", "ID", "STATE", "ATTEMPTS", "STAGED (UTC)",
                   "EXCHANGE", "ROUTING KEY", "MESSAGE ID", "LAST ERROR");
        for (const auto& row : rows) {
            fmt::print("{:>10} {:<8} {:>8} {:<24} {:<20} {:<20} {:<38} {}\n", row[0].as<long long>(),
                       row[1].as<std::string>(), row[2].as<int>(), row[3].as<std::string>(), shown(row[4]),
                       shown(row[5]), shown(row[6]), idemq::detail::first_line(row[7].as<std::string>()));
        }
        fmt::print("{} row(s){}\n", rows.size(), parked_ ? " parked" : " not yet published");
        return 0;
    }
    if (ids_.empty() && !parked_) {
        throw idemq::ConfigError("name the rows with --id, or pass --parked to act on every parked row");
    }
    const bool purge = purge_->parsed();
    if (purge && !yes_ && !dry_run_) {
        throw idemq::ConfigError("purge deletes messages that were never published: add --yes (or --dry-run)");
    }
    const std::optional<std::string> selection =
        ids_.empty() ? std::nullopt : std::optional(idemq::detail::bigint_array(ids_));
    pqxx::work tx(*connection);
    const auto changed = tx.exec_params(
        purge ? idemq::detail::outbox_purge_sql(schema_) : idemq::detail::outbox_retry_sql(schema_), selection);
    std::string ids;
    for (const auto& row : changed) ids += (ids.empty() ? "" : " ") + row[0].as<std::string>();
    if (dry_run_) {
        tx.abort();
    } else {
        tx.commit();
    }
    fmt::print(
        "{} {} row(s){}{}\n", dry_run_ ? "would" : (purge ? "purged" : "retried"),
        dry_run_ ? (purge ? "purge " : "retry ") + std::to_string(changed.size()) : std::to_string(changed.size()),
        ids.empty() ? "" : ": ", ids);
    return 0;
}

}  // namespace idemqctl
