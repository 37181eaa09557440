#include <idemq/errors.hpp>

#include <fmt/format.h>

#include <cstdlib>

#include "commands.hpp"
#include "common/config_text.hpp"
#include "common/environment_setting.hpp"
#include "inbox/database_session.hpp"
#include "inbox/retention.hpp"

namespace idemqctl {

InboxCommand::InboxCommand(CLI::App& parent) {
    if (const char* schema = std::getenv("IDEMQ_SCHEMA")) schema_ = schema;
    command_ = parent.add_subcommand("inbox", "Maintain the inbox table");
    command_->require_subcommand(1);
    prune_ = command_->add_subcommand("prune", "Delete inbox rows older than the retention window, in small batches");
    prune_->add_option("--older-than", older_than_, "retention window, e.g. 14d, 36h")->capture_default_str();
    prune_->add_option("--batch", batch_, "rows per transaction")->capture_default_str();
    prune_->add_option("--database-url", database_url_, "Postgres URL (default: IDEMQ_DATABASE_URL)");
    prune_->add_option("--schema", schema_, "schema of idemq's tables (default: IDEMQ_SCHEMA or idemq)");
}

int InboxCommand::run() {
    if (database_url_.empty())
        database_url_ = idemq::detail::setting_from_environment("IDEMQ_DATABASE_URL").value_or("");
    if (database_url_.empty()) throw idemq::ConfigError("IDEMQ_DATABASE_URL (or --database-url) is not set");
    const auto older_than = idemq::detail::parse_duration(older_than_, "--older-than");
    if (batch_ == 0) throw idemq::ConfigError("--batch must be at least 1");
    auto connection = idemq::detail::open_database(database_url_, "idemqctl inbox prune");
    const std::size_t deleted =
        idemq::detail::prune_inbox(*connection, schema_, older_than, batch_, std::chrono::milliseconds(10));
    fmt::print("pruned {} inbox row(s) received more than {} ago\n", deleted, older_than_);
    return 0;
}

}  // namespace idemqctl
