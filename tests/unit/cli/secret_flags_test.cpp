#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "cli/secret_flags.hpp"

namespace {

// argv as main() gets it: writable strings.
std::vector<std::string> scrubbed(std::vector<std::string> args) {
    args.insert(args.begin(), "worker");
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    idemq::detail::scrub_secret_flags(static_cast<int>(argv.size()), argv.data());
    args.erase(args.begin());
    return args;
}

}  // namespace

TEST_CASE("the password of a URL flag is overwritten in argv, keeping the arguments' lengths") {
    CHECK(scrubbed({"run", "--amqp-url", "amqp://u:Kq7%2FZr9@h:5672/v"}) ==
          std::vector<std::string>{"run", "--amqp-url", "amqp://u:xxxxxxxxx@h:5672/v"});
    CHECK(scrubbed({"run", "--database-url=postgresql://u:Kq7@Zr9@h/db"}) ==
          std::vector<std::string>{"run", "--database-url=postgresql://u:xxxxxxx@h/db"});
    // key=value strings, query passwords and text that does not parse: the whole value.
    CHECK(scrubbed({"--database-url", "host=h password=s"}) ==
          std::vector<std::string>{"--database-url", std::string(17, 'x')});
    CHECK(scrubbed({"--database-url", "postgresql://u@h/db?password=s"}) ==
          std::vector<std::string>{"--database-url", std::string(30, 'x')});
}

TEST_CASE("flags without a password and other arguments are left as they are") {
    const std::vector<std::string> args{"run", "--amqp-url", "amqp://u@h/v", "--schema", "u:p@h", "--database-url"};
    CHECK(scrubbed(args) == args);
}
