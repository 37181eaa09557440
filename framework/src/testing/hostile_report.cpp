// What the hostile suite's results say (idemq/testing.hpp: Ending, Report),
// apart from running it (hostile_suite.cpp).
#include <idemq/testing.hpp>

#include <fmt/format.h>

#include <sstream>
#include <stdexcept>

namespace idemq::testing {

std::string_view to_string(Ending ending) noexcept {
    switch (ending) {
        case Ending::kProcessed: return "processed";
        case Ending::kDuplicate: return "duplicate";
        case Ending::kDeadLettered: return "dead-lettered";
        case Ending::kUnsettled: return "unsettled";
    }
    return "unsettled";
}

const CaseResult& Report::at(std::string_view name) const {
    for (const auto& result : cases) {
        if (result.name == name) return result;
    }
    throw std::out_of_range(fmt::format("no hostile case named '{}'", name));
}

std::string Report::to_string() const {
    std::ostringstream out;
    const auto ending = [](Ending e, const std::string& reason) {
        return reason.empty() ? std::string(testing::to_string(e))
                              : fmt::format("{} ({})", testing::to_string(e), reason);
    };
    for (const auto& c : cases) {
        out << fmt::format("{:<30} first: {:<45} again: {}\n", c.name, ending(c.first, c.first_reason),
                           ending(c.second, c.second_reason));
        if (!c.first_error.empty()) out << fmt::format("{:<30} error: {}\n", "", c.first_error);
    }
    for (const auto& v : violations) out << "VIOLATION: " << v << '\n';
    for (const auto& w : warnings) out << "warning: " << w << '\n';
    return out.str();
}

}  // namespace idemq::testing
